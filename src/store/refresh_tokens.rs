//! Refresh tokens, stored as hashes, and their rotation.

use sqlx::Row;

use super::Store;

/// A refresh token joined with its session.
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub session_id: String,
    pub user_id: String,
    pub client_id: Option<String>,
    pub scope: String,
    pub token_created_at: i64,
    pub rotated_at: Option<i64>,
    pub session_expires_at: i64,
    pub session_revoked_at: Option<i64>,
}

impl Store {
    /// The refresh token with this hash, with the state of its session.
    pub async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT t.session_id, s.user_id, s.client_id, s.scope, t.created_at, t.rotated_at, \
             s.expires_at, s.revoked_at \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RefreshTokenRecord {
            session_id: row.try_get(0)?,
            user_id: row.try_get(1)?,
            client_id: row.try_get(2)?,
            scope: row.try_get(3)?,
            token_created_at: row.try_get(4)?,
            rotated_at: row.try_get(5)?,
            session_expires_at: row.try_get(6)?,
            session_revoked_at: row.try_get(7)?,
        }))
    }

    /// Retires `parent_hash` and stores `child_hash` as its successor, if and
    /// only if the parent is not yet rotated and its session is live at `now`.
    ///
    /// Returns `true` for the one caller whose conditional update changed the
    /// row; every concurrent caller, on any instance, gets `false`, and so
    /// does a caller whose transaction the database aborted to break a
    /// deadlock (it re-reads the token and decides again).
    pub async fn rotate_refresh_token(
        &self,
        session_id: &str,
        parent_hash: &str,
        child_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let rotated = match self
            .try_rotate(session_id, parent_hash, child_hash, now)
            .await
        {
            Err(err) if is_transient(&err) => {
                tracing::debug!(error = %err, "rotation aborted by the database; re-reading");
                false
            }
            other => other?,
        };
        if rotated {
            // Outside the rotation transaction: inside it, this write would
            // wait on the shared locks that concurrent losers hold on the
            // session row, and InnoDB would break the cycle with a deadlock.
            sqlx::query("UPDATE sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?")
                .bind(now)
                .bind(session_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(rotated)
    }

    async fn try_rotate(
        &self,
        session_id: &str,
        parent_hash: &str,
        child_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let retired = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ? \
             WHERE token_hash = ? AND session_id = ? AND rotated_at IS NULL AND EXISTS ( \
                 SELECT 1 FROM sessions s WHERE s.id = ? AND s.revoked_at IS NULL \
                 AND s.expires_at > ?)",
        )
        .bind(now)
        .bind(parent_hash)
        .bind(session_id)
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if retired != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(child_hash)
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Whether the database aborted the statement to resolve contention
/// (MySQL deadlock or lock-wait timeout, SQLite busy), so that retrying the
/// whole decision is safe.
fn is_transient(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
        return matches!(mysql.number(), 1213 | 1205);
    }
    // SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
    let code = db
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .unwrap_or_default();
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() && matches!(code & 0xff, 5 | 6)
}
