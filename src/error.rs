//! The crate error: failures that are not the client's doing.
//!
//! Expected outcomes (bad credentials, a taken username, a malformed body)
//! are each service's own error enums, which the API turns into the
//! operation's `Failure`. What lands here is logged in full and answered
//! opaquely (`api/failure.rs`): 503 when the database is unreachable, 500
//! otherwise, never with SQL or internals in the body.

/// An unexpected failure while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Password hashing failed (its reason, as text).
    #[error("{0}")]
    Hash(String),
    /// Every core is hashing and the queue is full.
    #[error("every core is hashing and the queue is full")]
    HashingBusy,
    #[error("cannot sign an access token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// The database kept aborting a transaction (contention) until the
    /// request's deadline.
    #[error("the database kept aborting the transaction until the deadline")]
    Contended,
    /// A secret stored sealed cannot be opened with the configured
    /// key-encryption key (the operator's configuration, or tampering).
    #[error("{0}")]
    Unsealable(String),
}

/// `Retry-After` when the database does not answer.
pub const DATABASE_RETRY_SECS: u32 = 5;
/// `Retry-After` when the database kept aborting a transaction.
pub const CONTENDED_RETRY_SECS: u32 = 1;
/// `Retry-After` when every core is hashing and the queue is full.
pub const HASHING_RETRY_SECS: u32 = 1;

impl Error {
    /// When retrying is worth it, after how many seconds: the database is
    /// unreachable or overloaded, or password hashing is saturated (503).
    /// `None` for a bug (500).
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Database(err) if database_unavailable(err) => Some(DATABASE_RETRY_SECS),
            Self::Contended => Some(CONTENDED_RETRY_SECS),
            Self::HashingBusy => Some(HASHING_RETRY_SECS),
            _ => None,
        }
    }
}

/// Whether `err` says the database could not be reached or did not answer
/// (a 503 worth retrying), rather than a bug.
pub(crate) fn database_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    ) || crate::store::is_unavailable(err)
}
