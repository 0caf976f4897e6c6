//! The crate error: failures that are not the client's doing.
//!
//! Expected outcomes (bad credentials, a taken username, a malformed body)
//! are variants of each operation's response type, not errors. What lands
//! here is logged in full and answered opaquely: 503 when the database is
//! unreachable, 500 otherwise, never with SQL or internals in the body.

use crate::auth::password::HashError;

/// An unexpected failure while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("cannot sign an access token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl Error {
    /// Whether the failure is the database being unreachable or overloaded,
    /// which clients should retry (503), rather than a bug (500).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::WorkerCrashed
            )
        )
    }
}
