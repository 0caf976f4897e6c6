//! The repository: every SQL statement of Gatehouse lives in this module.
//!
//! One implementation serves both stores through sqlx's `Any` driver: the
//! statements are portable between MySQL/MariaDB and SQLite (`?` placeholders,
//! integer timestamps, text keys), and the few differences (connection set-up,
//! "insert if absent") are matched on [`Backend`] here and nowhere else.
//! Every race is decided by the database: unique keys, conditional updates
//! whose affected-row count says who won, and transactions.

mod audit;
mod migrations;
mod refresh_tokens;
mod script;
mod sessions;
mod signing_keys;
mod throttle;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};
use tokio::time::Instant;

pub use audit::AuditEvent;
pub use refresh_tokens::{
    RefreshOutcome, RefreshState, RefreshTokenRecord, RefreshWrite, SuccessorRecord,
};
pub use sessions::{NewSession, SessionRecord};
pub use signing_keys::SigningKeyRecord;
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
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot take the migration lock: {0}")]
    MigrationLock(sqlx::Error),
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
}

impl Store {
    /// The pool now: connections open (in use or idle), idle ones, and the
    /// most it opens.
    pub fn pool_stats(&self) -> (usize, usize, usize) {
        let options = self.pool.options();
        (
            self.pool.size() as usize,
            self.pool.num_idle(),
            options.get_max_connections() as usize,
        )
    }

    /// Connects to `url` (creating a SQLite file and its directory if needed).
    /// It does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or(OpenError::UnsupportedScheme)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::MySql => url.to_owned(),
        };
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
                Box::pin(async move {
                    match backend {
                        // WAL lets readers proceed while one writer commits;
                        // writers queue on the busy timeout instead of failing.
                        Backend::Sqlite => conn
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await
                            .map(drop),
                        Backend::MySql => read_your_writes_on_galera(conn).await,
                    }
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(OpenError::Connect)?;
        let delivery = match backend {
            Backend::Sqlite => script::Delivery::OneByOne,
            // A Galera node has been seen to go on with a script's later
            // statements after it aborted the transaction for a conflicting
            // write from another node, committing them: one at a time there.
            Backend::MySql if is_galera(&pool).await.map_err(OpenError::Connect)? => {
                script::Delivery::OneByOne
            }
            Backend::MySql => script::Delivery::OneScript,
        };
        Ok(Self {
            pool,
            backend,
            delivery,
            writer: (backend == Backend::Sqlite).then(Arc::default),
            timeout: options.timeout,
        })
    }

    /// Runs `work` on one pooled connection within the store's deadline
    /// (see [`StoreOptions::timeout`]).
    async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.run_until(Instant::now() + self.timeout, work).await
    }

    /// [`Store::run`] for work that may safely be done twice (an insert if
    /// absent, a read): tried again, after a short pause, while the
    /// database aborts it to resolve contention ([`is_transient`]; on a
    /// Galera cluster, instances starting at once collide so), until the
    /// deadline.
    async fn run_idempotent<T>(
        &self,
        work: impl AsyncFn(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            match self
                .run_until(deadline, async |conn| work(conn).await)
                .await
            {
                Err(err) if is_transient(&err) && Instant::now() + pause < deadline => {
                    tracing::debug!(error = %err, "aborted by the database; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                done => return done,
            }
        }
    }

    /// Runs `work` on one pooled connection, waiting for the connection and
    /// running the statements together until `deadline`. A connection whose
    /// work did not finish, because it ran out of time, failed on the wire
    /// or was abandoned (the request was cancelled), is discarded: its
    /// statement may still be running, its answer half read or its
    /// transaction open, so it is never used again.
    async fn run_until<T>(
        &self,
        deadline: Instant,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let conn = match tokio::time::timeout_at(deadline, self.pool.acquire()).await {
            Ok(conn) => conn?,
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
        };
        let mut lent = Lent(Some(conn));
        let Some(conn) = lent.0.as_mut() else {
            unreachable!("the connection was just lent");
        };
        match tokio::time::timeout_at(deadline, work(conn)).await {
            Ok(Err(err)) if is_broken_connection(&err) => Err(err),
            Ok(result) => {
                lent.give_back();
                result
            }
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the database did not answer within --db-timeout",
            ))),
        }
    }

    /// This process's turn to write, on SQLite (the `writer` field),
    /// waited for until `deadline`; `None` where the database orders
    /// writers itself.
    async fn turn_to_write(
        &self,
        deadline: Instant,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>, sqlx::Error> {
        let Some(writer) = &self.writer else {
            return Ok(None);
        };
        match tokio::time::timeout_at(deadline, writer.clone().lock_owned()).await {
            Ok(turn) => Ok(Some(turn)),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
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

    /// The shared secret called `name`, created from `candidate` if no
    /// instance has created it yet. Every instance ends up with the same value:
    /// the first insert wins and everyone reads what it wrote.
    pub async fn get_or_create_secret(
        &self,
        name: &str,
        candidate: &str,
        now: i64,
    ) -> Result<String, sqlx::Error> {
        let insert = match self.backend {
            Backend::MySql => {
                "INSERT IGNORE INTO server_secrets (name, secret, created_at) VALUES (?, ?, ?)"
            }
            Backend::Sqlite => {
                "INSERT INTO server_secrets (name, secret, created_at) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO NOTHING"
            }
        };
        self.run_idempotent(async |conn| {
            sqlx::query(insert)
                .bind(name)
                .bind(candidate)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sqlx::query("SELECT secret FROM server_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)
        })
        .await
    }
}

/// On a Galera node, makes this connection's reads, updates and deletes
/// (`wsrep_sync_wait` = 1 + 2) first wait until the node has applied every
/// write the cluster committed before them: a token rotated, a session
/// created or revoked through another node is seen here at once. A server
/// without Galera (`@@wsrep_on` is 0, or unknown to MySQL) is left as it is.
async fn read_your_writes_on_galera(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    if galera_node(conn).await? {
        conn.execute("SET SESSION wsrep_sync_wait = 3").await?;
    }
    Ok(())
}

/// Whether the pool's server is a Galera node.
async fn is_galera(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    galera_node(&mut *pool.acquire().await?).await
}

/// Whether `conn`'s server is a Galera node with replication on.
async fn galera_node(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    match sqlx::query("SELECT @@wsrep_on").fetch_one(&mut *conn).await {
        Ok(row) => Ok(row.try_get::<i64, _>(0)? == 1),
        // ER_UNKNOWN_SYSTEM_VARIABLE: MySQL, which has no Galera.
        Err(sqlx::Error::Database(db))
            if db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|mysql| mysql.number() == 1193) =>
        {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// A pooled connection lent to one call: discarded when dropped, unless
/// the call finished with it and gave it back to the pool.
struct Lent(Option<PoolConnection<Any>>);

impl Lent {
    fn give_back(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Closes its socket (the server rolls back what it had begun)
            // and frees its place in the pool at once.
            drop(conn.detach());
        }
    }
}

/// Whether `err` says the connection itself failed (rather than that the
/// database refused a statement), so that it cannot be trusted again.
fn is_broken_connection(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_)
    )
}

/// Whether the database aborted a statement or transaction to resolve
/// contention, so that retrying the whole transaction is safe and right:
/// a MySQL deadlock or lock-wait timeout (on a Galera cluster, a
/// certification failure arrives as a deadlock, at COMMIT), or SQLite busy.
pub fn is_transient(err: &sqlx::Error) -> bool {
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

/// Whether the database refused a statement for a reason of its own that
/// passes: a transaction aborted by contention ([`is_transient`]), a
/// cluster node not ready to serve (MariaDB Galera's ER_UNKNOWN_COM_ERROR,
/// 1047), or a statement interrupted by the server (ER_QUERY_INTERRUPTED,
/// 1317; MariaDB's statement timeout, 1969). Such a request is answered 503.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    if is_transient(err) {
        return true;
    }
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|mysql| matches!(mysql.number(), 1047 | 1317 | 1969))
}

impl Store {
    /// `SELECT … FOR UPDATE` where the engine has row locks; SQLite's write
    /// transactions (begun with [`Store::begin_write`]) lock the database.
    fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::MySql => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// The statement that begins a transaction that will write. On SQLite
    /// it takes the write lock at once (waiting on the busy timeout), so a
    /// transaction never fails to upgrade a read lock midway.
    fn begin_write(&self) -> &'static str {
        match self.backend {
            Backend::MySql => "BEGIN",
            Backend::Sqlite => "BEGIN IMMEDIATE",
        }
    }
}

/// Makes sure the SQLite file can be created: its directory exists and the
/// URL asks for read-write-create mode unless it names a mode itself.
fn prepare_sqlite_url(url: &str) -> Result<String, OpenError> {
    let rest = url.split_once(':').map_or("", |(_, rest)| rest);
    let path = rest.trim_start_matches("//");
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    if !path.is_empty()
        && path != ":memory:"
        && let Some(dir) = std::path::Path::new(path).parent()
    {
        create_private_dir(dir).map_err(|source| OpenError::CreateDir {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Creates `dir` and its parents; new directories are private to the owner
/// (0700), since they hold password hashes and the signing key.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
