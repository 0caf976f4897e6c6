//! Users.

use sqlx::Connection as _;
use sqlx::FromRow as _;

use super::{MailKind, NewMail, Store};
use crate::clock::UnixMillis;
use crate::ids::{UserId, UsernameKey};

/// A user as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub created_at: UnixMillis,
    /// When the account was disabled; it cannot log in while set.
    pub disabled_at: Option<UnixMillis>,
    /// Moves on whenever every session must end; a login's session is
    /// inserted only under the epoch its password was checked in.
    pub session_epoch: i64,
    /// When the current address was proven (a verification link, or a
    /// password reset); `None` while it is not.
    pub email_verified_at: Option<UnixMillis>,
    /// When a second factor was confirmed; logins need one while it is set.
    pub mfa_enabled_at: Option<UnixMillis>,
    /// The TOTP secret, sealed with the key-encryption key [`Self::totp_kek_id`].
    pub totp_sealed: Option<String>,
    pub totp_kek_id: Option<String>,
}

/// What an account shows of itself: a user without its credentials. Its
/// address changes only by a confirmed link, which tells this instance's
/// session check (others see it within `--session-check-ttl`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Account {
    pub id: UserId,
    pub username: String,
    pub email: Option<String>,
    pub created_at: UnixMillis,
    pub email_verified_at: Option<UnixMillis>,
    /// When a second factor was confirmed.
    pub mfa_enabled_at: Option<UnixMillis>,
}

impl From<UserRecord> for Account {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            created_at: user.created_at,
            email_verified_at: user.email_verified_at,
            mfa_enabled_at: user.mfa_enabled_at,
        }
    }
}

/// The outcome of inserting a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertUser {
    Inserted,
    UsernameTaken,
}

/// The columns of a [`UserRecord`], in its order.
pub(super) const USER_COLUMNS: &str = "id, username, email, password_hash, created_at, \
     disabled_at, session_epoch, email_verified_at, mfa_enabled_at, totp_sealed, totp_kek_id";

impl Store {
    /// Inserts a user, with `mail` (its address's verification) queued in
    /// the same transaction; a taken username (by its case-insensitive
    /// `key`) is reported by the unique key.
    pub async fn insert_user(
        &self,
        user: &UserRecord,
        key: &UsernameKey,
        mail: Option<&NewMail>,
    ) -> Result<InsertUser, sqlx::Error> {
        let begin = self.begin_write();
        let result = self
            .retry_aborted(|| {
                self.run(async |conn| {
                    let mut tx = conn.begin_with(begin).await?;
                    sqlx::query(
                        "INSERT INTO users \
                     (id, username, username_key, email, password_hash, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&user.id)
                    .bind(&user.username)
                    .bind(key)
                    .bind(&user.email)
                    .bind(&user.password_hash)
                    .bind(user.created_at)
                    .execute(&mut *tx)
                    .await?;
                    if let Some(mail) = mail {
                        super::outbox::insert_mail(&mut tx, mail, user.created_at).await?;
                    }
                    tx.commit().await
                })
            })
            .await;
        match result {
            Ok(()) => Ok(InsertUser::Inserted),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Ok(InsertUser::UsernameTaken)
            }
            Err(err) => Err(err),
        }
    }

    /// The users whose address is `email` (as given, or lower-cased), at
    /// most `limit` of them.
    pub async fn find_users_by_email(
        &self,
        email: &str,
        limit: i64,
    ) -> Result<Vec<UserRecord>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email IN (?, ?) LIMIT ?");
        let lower = email.to_lowercase();
        let rows = self
            .run(async |conn| {
                sqlx::query(&sql)
                    .bind(email)
                    .bind(&lower)
                    .bind(limit)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        rows.iter().map(UserRecord::from_row).collect()
    }

    /// The user whose username has this case-insensitive key.
    pub async fn find_user_by_key(
        &self,
        key: &UsernameKey,
    ) -> Result<Option<UserRecord>, sqlx::Error> {
        self.find_user_where("username_key", key.as_str()).await
    }

    /// The user with this id.
    pub async fn find_user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, sqlx::Error> {
        self.find_user_where("id", id.as_str()).await
    }

    async fn find_user_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<UserRecord>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = ?");
        let row = self
            .run(async |conn| sqlx::query(&sql).bind(value).fetch_optional(conn).await)
            .await?;
        row.as_ref().map(UserRecord::from_row).transpose()
    }

    /// Sets a new password: replaces the hash, ends the session epoch (so
    /// that no login checked against the old password opens a session) and
    /// retires the account's outstanding reset links, in one transaction.
    pub async fn change_password_hash(
        &self,
        user_id: &UserId,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let begin = self.begin_write();
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin_with(begin).await?;
                sqlx::query(
                    "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1 \
                 WHERE id = ?",
                )
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                super::outbox::retire_tokens(&mut tx, user_id, &[MailKind::PasswordReset], now)
                    .await?;
                tx.commit().await
            })
        })
        .await
    }

    /// Replaces a user's password hash with the same password's, hashed
    /// with other parameters (sessions are unaffected).
    pub async fn update_password_hash(
        &self,
        user_id: &UserId,
        password_hash: &str,
    ) -> Result<(), sqlx::Error> {
        let update = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user_id);
        self.run(async |conn| update.execute(conn).await.map(drop))
            .await
    }

    /// Disables (`Some(now)`) or re-enables (`None`) the user whose username
    /// has this `key`; returns the user's id, or `None` if there is none.
    pub async fn set_user_disabled(
        &self,
        key: &UsernameKey,
        disabled_at: Option<UnixMillis>,
    ) -> Result<Option<UserId>, sqlx::Error> {
        // Disabling ends the session epoch too: a login racing it cannot
        // open a session afterwards.
        let update = sqlx::query(
            "UPDATE users SET disabled_at = ?, \
             session_epoch = session_epoch + CASE WHEN ? IS NULL THEN 0 ELSE 1 END \
             WHERE username_key = ?",
        )
        .bind(disabled_at)
        .bind(disabled_at)
        .bind(key);
        self.run(async |conn| update.execute(conn).await).await?;
        Ok(self.find_user_by_key(key).await?.map(|user| user.id))
    }
}
