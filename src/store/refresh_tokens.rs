//! Refresh tokens, stored as hashes, and the one transaction that rotates
//! them.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor as _};
use sqlx::{FromRow as _, Row as _};
use tokio::time::Instant;

use super::script::{self, Statement};
use super::{AuditEvent, Backend, Store, audit, dialect};
use crate::clock::UnixMillis;
use crate::ids::{SessionId, TokenHash, UserId};

/// A refresh token joined with its session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRecord {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub client_id: Option<String>,
    pub scope: String,
    pub token_created_at: UnixMillis,
    pub rotated_at: Option<UnixMillis>,
    /// The token it was last rotated into (`None` if not rotated, or
    /// rotated before successors were recorded).
    pub successor_hash: Option<TokenHash>,
    /// How many times its successor has been reissued.
    pub reissues: i64,
    /// Set when it was superseded by a reissue before it was ever used.
    pub superseded_at: Option<UnixMillis>,
    pub session_expires_at: UnixMillis,
    pub session_revoked_at: Option<UnixMillis>,
    /// When the session's user authenticated (Unix ms; `auth_time`).
    pub session_auth_time: UnixMillis,
    /// How the session's user authenticated (RFC 8176 values).
    pub amr: String,
    /// 1 when the session's client is confidential: only it refreshes.
    pub client_confidential: i64,
}

/// A presented refresh token as the transaction that holds its session sees
/// it: the token, its session, and the token's successor if it is stored.
#[derive(Debug, Clone)]
pub struct RefreshState {
    pub token: RefreshTokenRecord,
    /// The successor the token was rotated into: `None` until then.
    pub successor: Option<SuccessorRecord>,
    /// Whether the session's account is disabled (its sessions are revoked
    /// when it is; this holds against a login that raced that).
    pub user_disabled: bool,
}

/// The stored successor of a rotated token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SuccessorRecord {
    pub token_hash: TokenHash,
    pub created_at: UnixMillis,
    /// Set once the successor has been presented and rotated in turn.
    pub rotated_at: Option<UnixMillis>,
    /// Set once a reissue replaced it, unused.
    pub superseded_at: Option<UnixMillis>,
}

impl SuccessorRecord {
    /// Neither rotated nor superseded: nobody has presented it yet.
    pub fn is_unused(&self) -> bool {
        self.rotated_at.is_none() && self.superseded_at.is_none()
    }
}

/// What the transaction writes for a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshWrite {
    /// Retire the token, store its successor, mark the session used.
    Rotate { successor: TokenHash },
    /// The successor is already stored: mark the session used.
    Replay,
    /// Give the rotated token a new successor, supersede its unused one,
    /// mark the session used.
    Reissue {
        superseded: TokenHash,
        successor: TokenHash,
    },
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
    Committed(Box<(RefreshState, RefreshWrite)>),
    /// The state changed under the locks (which only a multi-primary
    /// cluster can do before it fails the commit): nothing was written;
    /// decide again.
    Raced,
}

/// The columns of a [`RefreshTokenRecord`]: the token `t` joined with its
/// session `s`.
macro_rules! record_columns {
    () => {
        "t.session_id, s.user_id, s.client_id, s.scope, t.created_at AS token_created_at, \
         t.rotated_at, t.successor_hash, t.reissues, t.superseded_at, s.expires_at AS session_expires_at, s.revoked_at AS session_revoked_at, \
         COALESCE(s.auth_time, s.created_at) AS session_auth_time, s.amr, s.client_confidential \
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?"
    };
}

/// The successor the token names, or (for one rotated before successors
/// were recorded) the one the legacy derivation gives.
const READ_SUCCESSOR: &str = "SELECT token_hash, created_at, rotated_at, superseded_at \
     FROM refresh_tokens WHERE token_hash = \
     COALESCE((SELECT successor_hash FROM refresh_tokens WHERE token_hash = ?), ?)";
/// Whether the token's account is disabled (a plain read, like the successor's).
const READ_USER_DISABLED: &str = "SELECT u.disabled_at FROM refresh_tokens t \
     JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
     WHERE t.token_hash = ?";
const RETIRE: &str = "UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ? \
     WHERE token_hash = ? AND rotated_at IS NULL";
const REISSUE: &str = "UPDATE refresh_tokens \
     SET rotated_at = ?, successor_hash = ?, reissues = reissues + 1 WHERE token_hash = ?";
const SUPERSEDE: &str = "UPDATE refresh_tokens SET superseded_at = ? \
     WHERE token_hash = ? AND rotated_at IS NULL AND superseded_at IS NULL";
const INSERT_SUCCESSOR: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)";
const TOUCH_SESSION: &str =
    "UPDATE sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?";
const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL";

impl Store {
    /// The refresh token with this hash, with the state of its session.
    pub async fn find_refresh_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshTokenRecord>, sqlx::Error> {
        let row = self
            .run(async |conn| {
                sqlx::query(concat!("SELECT ", record_columns!()))
                    .bind(token_hash)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        row.as_ref().map(RefreshTokenRecord::from_row).transpose()
    }

    /// Decides what to do with the token `parent_hash` (whose successor
    /// is `legacy_successor_hash` if it was rotated before successors were
    /// recorded), and does it, in one transaction that
    /// commits once: `decide` sees the token, its session and its successor
    /// as they are, and says what to write; the audit event it gives is
    /// written in the same commit. Until `deadline`.
    ///
    /// Two round trips on MySQL (see [`script`](super::script)): the first
    /// begins, locks the presented token's row and its session's row (in
    /// that order, in one statement) and reads the successor without a
    /// lock; the second writes and commits. Concurrent refreshes of one
    /// token queue on its row; of different tokens of one family, on the
    /// session's row; no transaction that holds a session's row waits for
    /// a token row that a refresh holds, and no index gap is locked before
    /// an insert, so refreshes do not deadlock each other. (SQLite's write
    /// transaction locks the whole database instead.) The successor's key
    /// is unique: even a broken lock cannot store two successors of a
    /// token, and the loser of such a race gets [`RefreshOutcome::Raced`].
    /// An error for which [`super::is_transient`] holds left nothing
    /// written.
    pub async fn refresh_in_transaction(
        &self,
        parent_hash: &TokenHash,
        legacy_successor_hash: Option<&TokenHash>,
        now: UnixMillis,
        deadline: Instant,
        decide: impl FnOnce(&RefreshState) -> (RefreshWrite, Option<AuditEvent>),
    ) -> Result<RefreshOutcome, sqlx::Error> {
        let (backend, delivery) = (self.backend, self.delivery);
        self.run_until(deadline, async |conn| {
            // With the connection in hand, so that only the transaction
            // itself waits for the turn.
            let _turn = self.turn_to_write(deadline).await?;
            refresh_on(
                conn,
                backend,
                delivery,
                parent_hash,
                legacy_successor_hash,
                now,
                decide,
            )
            .await
        })
        .await
    }
}

/// [`Store::refresh_in_transaction`] on `conn`.
async fn refresh_on(
    conn: &mut AnyConnection,
    backend: Backend,
    delivery: script::Delivery,
    parent_hash: &TokenHash,
    legacy_successor_hash: Option<&TokenHash>,
    now: UnixMillis,
    decide: impl FnOnce(&RefreshState) -> (RefreshWrite, Option<AuditEvent>),
) -> Result<RefreshOutcome, sqlx::Error> {
    // On MySQL the statement locks the presented token's row and its
    // session's row; SQLite's write transaction has locked the database.
    let lock_token = format!(
        "SELECT {}{}",
        record_columns!(),
        dialect::for_update(backend)
    );
    let reads = [
        Statement::new(dialect::begin_write(backend)),
        Statement::new(lock_token).bind(parent_hash.as_str()),
        // Not locked: a plain read in the transaction (InnoDB's first, so
        // its snapshot) after the session's row lock was granted, and only
        // a holder of that lock writes a token of the session. Locking a
        // row that may not exist would lock the index gap around it, and
        // two families inserting into one gap would deadlock.
        Statement::new(READ_SUCCESSOR)
            .bind(parent_hash.as_str())
            .bind(legacy_successor_hash.map_or("", TokenHash::as_str)),
        Statement::new(READ_USER_DISABLED).bind(parent_hash.as_str()),
    ];
    let read = match script::run(conn, delivery, &reads).await {
        Ok(read) => read,
        Err(err) => return Err(rolled_back(conn, err).await),
    };
    let state = match state_of(&read[1].rows, &read[2].rows, &read[3].rows) {
        Ok(Some(state)) => state,
        // Unknown, or pruned since it was found.
        Ok(None) => {
            rollback(conn).await?;
            return Ok(RefreshOutcome::Unknown);
        }
        Err(err) => return Err(rolled_back(conn, err).await),
    };
    let (write, event) = decide(&state);
    let mut writes = statements_for(&state, &write, parent_hash, now);
    writes.extend(event.as_ref().map(audit::insert_audit_event_statement));
    writes.push(Statement::new("COMMIT"));
    match script::run(conn, delivery, &writes).await {
        Ok(_) => {}
        Err(err) if is_unique_violation(&err) => {
            rollback(conn).await?;
            return Ok(RefreshOutcome::Raced);
        }
        Err(err) => return Err(rolled_back(conn, err).await),
    }
    drop(writes);
    Ok(RefreshOutcome::Committed(Box::new((state, write))))
}

/// The statements that write what was decided for `state`.
fn statements_for<'a>(
    state: &'a RefreshState,
    write: &'a RefreshWrite,
    parent_hash: &'a TokenHash,
    now: UnixMillis,
) -> Vec<Statement<'a>> {
    let parent_hash = parent_hash.as_str();
    let session_id = state.token.session_id.as_str();
    let touch = || {
        Statement::new(TOUCH_SESSION)
            .bind(now)
            .bind(session_id)
            .bind(now)
    };
    let insert = |successor: &'a TokenHash| {
        Statement::new(INSERT_SUCCESSOR)
            .bind(successor.as_str())
            .bind(session_id)
            .bind(now)
    };
    match write {
        RefreshWrite::Rotate { successor } => vec![
            Statement::new(RETIRE)
                .bind(now)
                .bind(successor.as_str())
                .bind(parent_hash),
            insert(successor),
            touch(),
        ],
        RefreshWrite::Replay => vec![touch()],
        RefreshWrite::Reissue {
            superseded,
            successor,
        } => {
            vec![
                Statement::new(REISSUE)
                    .bind(now)
                    .bind(successor.as_str())
                    .bind(parent_hash),
                Statement::new(SUPERSEDE)
                    .bind(now)
                    .bind(superseded.as_str()),
                insert(successor),
                touch(),
            ]
        }
        RefreshWrite::Revoke => vec![Statement::new(REVOKE_SESSION).bind(now).bind(session_id)],
        RefreshWrite::Nothing => Vec::new(),
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

async fn rollback(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // Through `Executor`, whose boxed future is `Send` where
    // `RawSql::execute`'s is not general enough for poem's handlers.
    conn.execute(sqlx::raw_sql("ROLLBACK")).await.map(drop)
}

/// `err`, after rolling back what its script began; or why the rollback
/// failed, which means the connection is broken.
async fn rolled_back(conn: &mut AnyConnection, err: sqlx::Error) -> sqlx::Error {
    match rollback(conn).await {
        Ok(()) => err,
        Err(broken) => broken,
    }
}

fn state_of(
    token: &[AnyRow],
    successor: &[AnyRow],
    user: &[AnyRow],
) -> Result<Option<RefreshState>, sqlx::Error> {
    let Some(token) = token.first() else {
        return Ok(None);
    };
    let disabled_at = user
        .first()
        .map(|row| row.try_get::<Option<i64>, _>(0))
        .transpose()?
        .flatten();
    Ok(Some(RefreshState {
        token: RefreshTokenRecord::from_row(token)?,
        successor: successor
            .first()
            .map(SuccessorRecord::from_row)
            .transpose()?,
        user_disabled: disabled_at.is_some(),
    }))
}
