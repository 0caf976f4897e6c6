//! Refresh tokens, stored as hashes, and the one transaction that rotates
//! them.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection as _, Row};
use tokio::time::Instant;

use super::{AuditEvent, Backend, Store};

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

/// A presented refresh token as the transaction that holds its session sees
/// it: the token, its session, and the token's successor if it is stored.
#[derive(Debug, Clone)]
pub struct RefreshState {
    pub token: RefreshTokenRecord,
    /// The successor the token was rotated into: `None` until then.
    pub successor: Option<SuccessorRecord>,
}

/// The stored successor of a rotated token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuccessorRecord {
    pub created_at: i64,
    /// Set once the successor has been presented and rotated in turn.
    pub rotated_at: Option<i64>,
}

/// What the transaction writes for a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshWrite {
    /// Retire the token, store its successor, mark the session used.
    Rotate,
    /// The successor is already stored: mark the session used.
    Replay,
    /// Revoke the token's session (its whole family).
    Revoke,
    /// Write nothing.
    Nothing,
}

/// What a refresh transaction did.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// No token has this hash.
    Unknown,
    /// Committed: the state it decided on, and what it wrote.
    Committed(RefreshState, RefreshWrite),
    /// The state changed under the locks (which only a multi-primary
    /// cluster can do before it fails the commit): nothing was written;
    /// decide again.
    Raced,
}

/// The columns of a [`RefreshTokenRecord`]: the token `t` joined with its
/// session `s`.
const RECORD_COLUMNS: &str = "t.session_id, s.user_id, s.client_id, s.scope, t.created_at, \
                              t.rotated_at, s.expires_at, s.revoked_at";

impl Store {
    /// The refresh token with this hash, with the state of its session.
    pub async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, sqlx::Error> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = ?"
        );
        let row = self
            .run(async |conn| {
                sqlx::query(&sql)
                    .bind(token_hash)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        row.as_ref().map(record_of).transpose()
    }

    /// Decides what to do with the token `parent_hash`, whose successor
    /// would be `successor_hash`, and does it, in one transaction that
    /// commits once: `decide` sees the token, its session and its successor
    /// as they are, and says what to write; the audit event it gives is
    /// written in the same commit. Until `deadline`.
    ///
    /// The transaction locks the session row before it reads or writes any
    /// token of the family, then the presented token's row, and no index
    /// gap: concurrent refreshes of one family, on any instance, queue on
    /// that one lock, and refreshes of different families never wait for
    /// each other, so none deadlocks. (SQLite's write transaction locks the
    /// whole database instead.) An error for which
    /// [`super::is_transient`] holds left nothing written.
    pub async fn refresh_in_transaction(
        &self,
        parent_hash: &str,
        successor_hash: &str,
        now: i64,
        deadline: Instant,
        decide: impl FnOnce(&RefreshState) -> (RefreshWrite, Option<AuditEvent>),
    ) -> Result<RefreshOutcome, sqlx::Error> {
        // Locking reads, chosen once per backend (this is the hot path).
        let (lock_session, lock_parent) = match self.backend {
            Backend::MySql => (
                "SELECT user_id, client_id, scope, expires_at, revoked_at FROM sessions \
                 WHERE id = ? FOR UPDATE",
                "SELECT created_at, rotated_at FROM refresh_tokens WHERE token_hash = ? FOR UPDATE",
            ),
            Backend::Sqlite => (
                "SELECT user_id, client_id, scope, expires_at, revoked_at FROM sessions WHERE id = ?",
                "SELECT created_at, rotated_at FROM refresh_tokens WHERE token_hash = ?",
            ),
        };
        let begin = self.begin_write();
        self.run_until(deadline, async |conn| {
            // A token's session never changes, so finding it needs no lock;
            // and an unknown token never opens a transaction.
            let Some(session_id) = session_of(conn, parent_hash).await? else {
                return Ok(RefreshOutcome::Unknown);
            };
            let mut tx = conn.begin_with(begin).await?;
            let session = sqlx::query(lock_session)
                .bind(&session_id)
                .fetch_optional(&mut *tx)
                .await?;
            let parent = sqlx::query(lock_parent)
                .bind(parent_hash)
                .fetch_optional(&mut *tx)
                .await?;
            // Not locked: only a transaction holding the session's lock
            // writes it, and this plain read (InnoDB's first, so its
            // snapshot) comes after that lock was granted. Locking a row
            // that may not exist would lock the index gap around it, and
            // two families inserting into one gap would deadlock.
            let successor = sqlx::query(
                "SELECT created_at, rotated_at FROM refresh_tokens WHERE token_hash = ?",
            )
            .bind(successor_hash)
            .fetch_optional(&mut *tx)
            .await?;
            // Pruned since it was found: as if it had never existed.
            let Some(state) = state_of(session_id, session, parent, successor)? else {
                tx.rollback().await?;
                return Ok(RefreshOutcome::Unknown);
            };
            let (write, event) = decide(&state);
            if !write_decision(&mut tx, &state, write, parent_hash, successor_hash, now).await? {
                tx.rollback().await?;
                return Ok(RefreshOutcome::Raced);
            }
            if let Some(event) = event {
                super::audit::insert_audit_event(&mut tx, &event).await?;
            }
            tx.commit().await?;
            Ok(RefreshOutcome::Committed(state, write))
        })
        .await
    }
}

async fn session_of(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = ?")
        .bind(token_hash)
        .fetch_optional(conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()
}

/// Writes what was decided; `false` (and nothing worth keeping written)
/// when the token was rotated under the lock. The rotation is conditional
/// as well as locked, so that even a broken lock cannot rotate a token
/// twice.
async fn write_decision(
    conn: &mut AnyConnection,
    state: &RefreshState,
    write: RefreshWrite,
    parent_hash: &str,
    successor_hash: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let session_id = &state.token.session_id;
    match write {
        RefreshWrite::Rotate => {
            let retired = sqlx::query(
                "UPDATE refresh_tokens SET rotated_at = ? \
                 WHERE token_hash = ? AND rotated_at IS NULL",
            )
            .bind(now)
            .bind(parent_hash)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if retired != 1 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
            )
            .bind(successor_hash)
            .bind(session_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            touch_session(conn, session_id, now).await?;
        }
        RefreshWrite::Replay => touch_session(conn, session_id, now).await?,
        RefreshWrite::Revoke => {
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(session_id)
                .execute(conn)
                .await?;
        }
        RefreshWrite::Nothing => {}
    }
    Ok(true)
}

async fn touch_session(
    conn: &mut AnyConnection,
    session_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?")
        .bind(now)
        .bind(session_id)
        .bind(now)
        .execute(conn)
        .await
        .map(drop)
}

fn state_of(
    session_id: String,
    session: Option<AnyRow>,
    parent: Option<AnyRow>,
    successor: Option<AnyRow>,
) -> Result<Option<RefreshState>, sqlx::Error> {
    let (Some(session), Some(parent)) = (session, parent) else {
        return Ok(None);
    };
    let successor = successor
        .map(|row| {
            Ok::<_, sqlx::Error>(SuccessorRecord {
                created_at: row.try_get(0)?,
                rotated_at: row.try_get(1)?,
            })
        })
        .transpose()?;
    Ok(Some(RefreshState {
        token: RefreshTokenRecord {
            session_id,
            user_id: session.try_get(0)?,
            client_id: session.try_get(1)?,
            scope: session.try_get(2)?,
            token_created_at: parent.try_get(0)?,
            rotated_at: parent.try_get(1)?,
            session_expires_at: session.try_get(3)?,
            session_revoked_at: session.try_get(4)?,
        },
        successor,
    }))
}

fn record_of(row: &AnyRow) -> Result<RefreshTokenRecord, sqlx::Error> {
    Ok(RefreshTokenRecord {
        session_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        client_id: row.try_get(2)?,
        scope: row.try_get(3)?,
        token_created_at: row.try_get(4)?,
        rotated_at: row.try_get(5)?,
        session_expires_at: row.try_get(6)?,
        session_revoked_at: row.try_get(7)?,
    })
}
