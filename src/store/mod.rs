//! The repository: every SQL statement of Gatehouse lives in this module.
//!
//! One implementation serves both stores through sqlx's `Any` driver: the
//! statements are portable between MySQL/MariaDB and SQLite (`?` placeholders,
//! integer timestamps, text keys), and the few differences (connection set-up,
//! "insert if absent") are matched on [`Backend`] here and nowhere else.
//! Every race is decided by the database: unique keys, conditional updates
//! whose affected-row count says who won, and transactions.

mod audit;
mod authorization;
mod calls;
mod clients;
mod dialect;
mod mfa;
mod migrations;
mod outbox;
mod own_connections;
mod refresh_tokens;
mod retry;
mod script;
mod secrets;
mod sessions;
mod signing_keys;
mod single_use;
mod throttle;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

pub use audit::AuditEvent;
pub use authorization::{BrowserSession, CodeRecord, ConsentRecord, NewCode, Redemption};
pub use clients::ClientRecord;
pub(crate) use dialect::create_private_dir;
pub use dialect::{is_transient, is_unavailable};
pub use mfa::{ChallengeRecord, NewChallenge, Passed, Proof, SealedTotp};
pub use outbox::{
    AccountToken, EmailConfirmed, MailKind, MailState, NewAccountToken, NewMail, OutboxMail,
    PasswordReset,
};
pub use own_connections::OwnConnections;
pub use refresh_tokens::{
    RefreshOutcome, RefreshState, RefreshTokenRecord, RefreshWrite, SuccessorRecord,
};
pub use retry::Backoff;
pub use sessions::{NewSession, SessionRecord};
pub use signing_keys::SigningKeyRecord;
pub use throttle::ThrottleRow;
pub use users::{Account, InsertUser, UserRecord};

/// Which database engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MySQL 8 or MariaDB 10.6+ (`mysql://` or `mariadb://`).
    MySql,
    /// The embedded SQLite store (`sqlite:`).
    Sqlite,
}

impl Backend {
    /// The backend a database URL names by its scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "mysql" | "mariadb" => Some(Self::MySql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// How the store connects.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool.
    pub max_connections: u32,
    /// The deadline of one database call: waiting for a connection and
    /// running the statements together. Past it the call fails (503) and
    /// its connection is discarded.
    pub timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL scheme (expected mysql://, mariadb:// or sqlite://)")]
    UnsupportedScheme,
    #[error("invalid database URL: {0}")]
    InvalidUrl(sqlx::Error),
    #[error("cannot create the directory for the SQLite database {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot make the SQLite database {path} readable by its owner only: {source}")]
    PrivateFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot take the migration lock: {0}")]
    MigrationLock(sqlx::Error),
}

/// The connection pool at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open, in use or idle.
    pub open: usize,
    pub idle: usize,
    /// The most the pool opens (`--db-max-connections`).
    pub max: usize,
}

/// The database: a connection pool and the backend it speaks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// How a transaction's statements travel (see [`script`]).
    delivery: script::Delivery,
    /// On SQLite, the turn to write: its write transactions queue here, in
    /// order, rather than find the database locked and sleep in SQLite's
    /// busy handler (whose sleeps grow to 100 ms).
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
    /// See [`StoreOptions::timeout`].
    timeout: Duration,
    /// Transactions the database aborted and that were tried again, by
    /// every clone of this store (`gatehouse_db_transaction_retries_total`).
    retried: Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// The pool now: connections open (in use or idle), idle ones, and the
    /// most it opens.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.pool.size() as usize,
            idle: self.pool.num_idle(),
            max: self.pool.options().get_max_connections() as usize,
        }
    }

    /// Connects to `url` (creating a SQLite file and its directory if needed).
    /// It does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or(OpenError::UnsupportedScheme)?;
        let url = dialect::prepare_url(backend, url)?;
        let connect_options = AnyConnectOptions::from_str(&url).map_err(OpenError::InvalidUrl)?;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.timeout)
            // sqlx pings a connection before lending it out (a round trip
            // per call, about 5% of refresh throughput): kept, since
            // without it the first call on a connection that broke while
            // idle, after a network fault or a database restart, fails.
            .test_before_acquire(true)
            .after_connect(move |conn, _meta| {
                Box::pin(async move { dialect::set_up_connection(backend, conn).await })
            })
            .connect_with(connect_options)
            .await
            .map_err(OpenError::Connect)?;
        let delivery = dialect::delivery(backend, &pool)
            .await
            .map_err(OpenError::Connect)?;
        Ok(Self {
            pool,
            backend,
            delivery,
            writer: (backend == Backend::Sqlite).then(Arc::default),
            timeout: options.timeout,
            retried: Arc::default(),
        })
    }

    /// Transactions the database aborted (deadlock, lock wait, certification
    /// failure, busy) and that were tried again, since the store opened.
    pub fn transactions_retried(&self) -> u64 {
        self.retried.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one transaction tried again after the database aborted it.
    pub(crate) fn count_retry(&self) {
        self.retried
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every embedded migration not yet applied. Safe to run from
    /// many instances at once, on one server or on the nodes of a cluster:
    /// one migrates while the others wait (see [`migrations::MigrationLock`]).
    pub async fn migrate(&self) -> Result<(), OpenError> {
        let migrator = migrations::migrator(self.backend);
        let lock = migrations::MigrationLock::acquire(&self.pool, self.backend)
            .await
            .map_err(OpenError::MigrationLock)?;
        let migrated = migrator.run(&self.pool).await;
        lock.release().await;
        Ok(migrated?)
    }

    /// Answers when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.run(async |conn| sqlx::query("SELECT 1").execute(conn).await.map(drop))
            .await
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
