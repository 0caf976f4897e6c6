//! Sessions: one per login, each a family of refresh tokens.

use sqlx::FromRow as _;
use sqlx::{Connection as _, Row};

use super::{Account, Store};
use crate::clock::UnixMillis;
use crate::ids::{SessionId, TokenHash, UserId};

/// A new session (refresh-token family) with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub user_id: &'a UserId,
    pub client_id: Option<&'a str>,
    pub scope: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub first_token_hash: &'a TokenHash,
    /// The user's session epoch when the login checked the password.
    pub user_epoch: i64,
    /// How the user authenticated (RFC 8176 values, space-separated).
    pub amr: &'a str,
    /// When the user authenticated (`auth_time`): the login, or for an
    /// authorization code the sign-in page's, which may be earlier.
    pub auth_time: UnixMillis,
    /// Whether `client_id` is a confidential client, which alone may then
    /// refresh the session.
    pub client_confidential: bool,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: SessionId,
    pub client_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: UnixMillis,
    pub last_used_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// How its user signed in (RFC 8176 values, space-separated).
    pub amr: String,
}

impl Store {
    /// Creates a session and its first refresh token, atomically, if the
    /// user is still enabled and in the epoch the login read; whether it did.
    /// The database decides: a password change or a disable that commits
    /// first leaves the login with no session, and one that commits after
    /// revokes it.
    pub async fn insert_session(&self, session: &NewSession<'_>) -> Result<bool, sqlx::Error> {
        // An abort (a cluster node certifying a concurrent write to the
        // user's row first) leaves nothing behind: tried again.
        self.retry_aborted(|| {
            self.run(async |conn| {
                let mut tx = conn.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO sessions (id, user_id, client_id, scope, user_agent, ip, \
                 created_at, last_used_at, expires_at, amr, client_confidential, auth_time) \
                 SELECT ?, id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM users \
                 WHERE id = ? AND disabled_at IS NULL AND session_epoch = ?",
                )
                .bind(session.id)
                .bind(session.client_id)
                .bind(session.scope)
                .bind(session.user_agent)
                .bind(session.ip)
                .bind(session.created_at)
                .bind(session.created_at)
                .bind(session.expires_at)
                .bind(session.amr)
                .bind(i64::from(session.client_confidential))
                .bind(session.auth_time)
                .bind(session.user_id)
                .bind(session.user_epoch)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
            )
            .bind(session.first_token_hash)
            .bind(session.id)
            .bind(session.created_at)
            .execute(&mut *tx)
            .await?;
                tx.commit().await.map(|()| true)
            })
        })
        .await
    }

    /// Revokes a session (and so every refresh token of its family). Revoking
    /// a revoked session keeps its first revocation time.
    pub async fn revoke_session(
        &self,
        session_id: &SessionId,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let revoke =
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(session_id);
        self.run(async |conn| revoke.execute(conn).await.map(drop))
            .await
    }

    /// The live sessions of a user at `now`, newest first.
    pub async fn list_sessions(
        &self,
        user_id: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionRecord>, sqlx::Error> {
        let select = sqlx::query(
            "SELECT id, client_id, user_agent, ip, created_at, last_used_at, expires_at, amr \
             FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
             ORDER BY created_at DESC, id",
        )
        .bind(user_id)
        .bind(now);
        let rows = self.run(async |conn| select.fetch_all(conn).await).await?;
        rows.iter().map(SessionRecord::from_row).collect()
    }

    /// The account that owns a session that exists, is not revoked and has
    /// not expired at `now`, and whose account is not disabled; `None`
    /// otherwise.
    pub async fn live_session_owner(
        &self,
        session_id: &SessionId,
        now: UnixMillis,
    ) -> Result<Option<Account>, sqlx::Error> {
        let select = sqlx::query(
            "SELECT u.id, u.username, u.email, u.created_at, u.email_verified_at, u.mfa_enabled_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ? \
             AND u.disabled_at IS NULL",
        )
        .bind(session_id)
        .bind(now);
        let row = self
            .run(async |conn| select.fetch_optional(conn).await)
            .await?;
        row.as_ref().map(Account::from_row).transpose()
    }

    /// Revokes one live session of `user_id`; `false` when there is no such
    /// live session of that user (someone else's id looks the same as none).
    pub async fn revoke_user_session(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE sessions SET revoked_at = ? \
             WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .bind(session_id)
        .bind(user_id)
        .bind(now);
        let revoked = self
            .run(async |conn| update.execute(conn).await)
            .await?
            .rows_affected();
        Ok(revoked == 1)
    }

    /// Revokes every live session of `user_id` except `keep`; returns the
    /// ids revoked.
    pub async fn revoke_other_sessions(
        &self,
        user_id: &UserId,
        keep: &SessionId,
        now: UnixMillis,
    ) -> Result<Vec<SessionId>, sqlx::Error> {
        self.revoke_sessions_of(user_id, Some(keep), now).await
    }

    /// Revokes every live session of `user_id`; returns the ids revoked.
    pub async fn revoke_all_sessions(
        &self,
        user_id: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionId>, sqlx::Error> {
        self.revoke_sessions_of(user_id, None, now).await
    }

    /// Revokes the live sessions of `user_id` but `keep`, in one
    /// transaction that reads them locked, so that the ids returned are
    /// exactly the sessions revoked.
    async fn revoke_sessions_of(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: UnixMillis,
    ) -> Result<Vec<SessionId>, sqlx::Error> {
        let keep = keep.map_or("", SessionId::as_str);
        let select = format!(
            "SELECT id FROM sessions WHERE user_id = ? AND id <> ? AND revoked_at IS NULL{}",
            self.for_update()
        );
        let begin = self.begin_write();
        self.run(async |conn| {
            let mut tx = conn.begin_with(begin).await?;
            let ids: Vec<SessionId> = sqlx::query(&select)
                .bind(user_id)
                .bind(keep)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            sqlx::query(
                "UPDATE sessions SET revoked_at = ? \
                 WHERE user_id = ? AND id <> ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(ids)
        })
        .await
    }
}

impl Store {
    /// Deletes sessions that expired before `now` or were revoked before
    /// `revoked_before`, with their refresh tokens (the foreign key
    /// cascades), likewise the login page's browser sessions, authorization
    /// codes that expired before `revoked_before`, and throttle counters whose window started before
    /// `throttle_before` and that block nothing at `now`. Returns the number
    /// of sessions and of counters deleted.
    pub async fn prune(
        &self,
        now: UnixMillis,
        revoked_before: UnixMillis,
        throttle_before: UnixMillis,
    ) -> Result<(u64, u64), sqlx::Error> {
        self.run(async |conn| {
            let sessions =
                sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR revoked_at < ?")
                    .bind(now)
                    .bind(revoked_before)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            let counters = sqlx::query(
                "DELETE FROM login_throttle \
                 WHERE window_start < ? AND (blocked_until IS NULL OR blocked_until <= ?)",
            )
            .bind(throttle_before)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // Codes are kept past their minute as long as revoked sessions
            // are, so that a late replay still revokes what the code got.
            sqlx::query("DELETE FROM authorization_codes WHERE expires_at < ?")
                .bind(revoked_before)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM browser_sessions WHERE expires_at <= ? OR revoked_at < ?")
                .bind(now)
                .bind(revoked_before)
                .execute(&mut *conn)
                .await?;
            for table in ["mfa_challenges", "totp_enrolments"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= ?"))
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok((sessions, counters))
        })
        .await
    }
}

/// [`Store::live_session_owner`] of many sessions in one statement, on
/// `conn`: the owner of each that is live at `now`; the others are absent.
pub(super) async fn live_session_owners(
    conn: &mut sqlx::AnyConnection,
    session_ids: &[SessionId],
    now: UnixMillis,
) -> Result<Vec<(SessionId, Account)>, sqlx::Error> {
    let Some(last) = session_ids.last() else {
        return Ok(Vec::new());
    };
    // A few shapes of statement, each prepared once: the list is padded to
    // a power of two with its last id.
    let slots = session_ids.len().next_power_of_two();
    let placeholders = vec!["?"; slots].join(", ");
    let sql = format!(
        "SELECT s.id AS session_id, u.id, u.username, u.email, u.created_at, \
         u.email_verified_at, u.mfa_enabled_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id IN ({placeholders}) AND s.revoked_at IS NULL AND s.expires_at > ? \
         AND u.disabled_at IS NULL"
    );
    let mut select = sqlx::query(&sql);
    for id in session_ids
        .iter()
        .chain(std::iter::repeat(last))
        .take(slots)
    {
        select = select.bind(id);
    }
    let rows = select.bind(now).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let session = SessionId::from(row.try_get::<String, _>("session_id")?.as_str());
            Ok((session, Account::from_row(row)?))
        })
        .collect()
}
