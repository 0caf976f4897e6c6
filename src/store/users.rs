//! Users.

use sqlx::FromRow as _;

use super::Store;
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
}

/// What an account shows of itself: a user without its credentials. Never
/// changes once registered, so it may be kept as long as its session is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Account {
    pub id: UserId,
    pub username: String,
    pub email: Option<String>,
    pub created_at: UnixMillis,
}

impl From<UserRecord> for Account {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            created_at: user.created_at,
        }
    }
}

/// The outcome of inserting a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertUser {
    Inserted,
    UsernameTaken,
}

impl Store {
    /// Inserts a user; a taken username (by its case-insensitive `key`) is
    /// reported by the unique key.
    pub async fn insert_user(
        &self,
        user: &UserRecord,
        key: &UsernameKey,
    ) -> Result<InsertUser, sqlx::Error> {
        let insert = sqlx::query(
            "INSERT INTO users (id, username, username_key, email, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(key)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.created_at);
        let result = self.run(async |conn| insert.execute(conn).await).await;
        match result {
            Ok(_) => Ok(InsertUser::Inserted),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Ok(InsertUser::UsernameTaken)
            }
            Err(err) => Err(err),
        }
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
        let sql = format!(
            "SELECT id, username, email, password_hash, created_at, disabled_at, session_epoch \
             FROM users WHERE {column} = ?"
        );
        let row = self
            .run(async |conn| sqlx::query(&sql).bind(value).fetch_optional(conn).await)
            .await?;
        row.as_ref().map(UserRecord::from_row).transpose()
    }

    /// Sets a new password: replaces the hash and ends the session epoch,
    /// so that no login checked against the old password opens a session.
    pub async fn change_password_hash(
        &self,
        user_id: &UserId,
        password_hash: &str,
    ) -> Result<(), sqlx::Error> {
        let update = sqlx::query(
            "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1 WHERE id = ?",
        )
        .bind(password_hash)
        .bind(user_id);
        self.run(async |conn| update.execute(conn).await.map(drop))
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
