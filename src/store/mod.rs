//! The repository: every SQL statement of Gatehouse lives in this module.
//!
//! One implementation serves both stores through sqlx's `Any` driver: the
//! statements are portable between MySQL/MariaDB and SQLite (`?` placeholders,
//! integer timestamps, text keys), and the few differences (connection set-up,
//! "insert if absent") are matched on [`Backend`] here and nowhere else.
//! Every race is decided by the database: unique keys, conditional updates
//! whose affected-row count says who won, and transactions.

mod migrations;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

pub use migrations::EmbeddedMigrations;

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
    /// How long a request waits for a connection before it fails with 503.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
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
}

/// A user as stored.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub created_at: i64,
}

/// A new session (refresh-token family) with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub client_id: Option<&'a str>,
    pub scope: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub created_at: i64,
    pub expires_at: i64,
    pub first_token_hash: &'a str,
}

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

/// A session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub client_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

/// The outcome of inserting a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertUser {
    Inserted,
    UsernameTaken,
}

/// The database: a connection pool and the backend it speaks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
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
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed while one writer commits;
                        // writers queue on the busy timeout instead of failing.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(OpenError::Connect)?;
        Ok(Self { pool, backend })
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every embedded migration not yet applied. Safe to run from
    /// several instances at once: sqlx takes a database lock while migrating.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        let migrator = Migrator::new(EmbeddedMigrations(self.backend)).await?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Answers when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts a user; a taken username is reported by the unique key.
    pub async fn insert_user(&self, user: &UserRecord) -> Result<InsertUser, sqlx::Error> {
        let result = sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(InsertUser::Inserted),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Ok(InsertUser::UsernameTaken)
            }
            Err(err) => Err(err),
        }
    }

    /// The user with exactly this username.
    pub async fn find_user_by_name(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, sqlx::Error> {
        sqlx::query(
            "SELECT id, username, email, password_hash, created_at FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .map(user_from_row)
        .transpose()
    }

    /// The user with this id.
    pub async fn find_user_by_id(&self, id: &str) -> Result<Option<UserRecord>, sqlx::Error> {
        sqlx::query("SELECT id, username, email, password_hash, created_at FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(user_from_row)
            .transpose()
    }

    /// Creates a session and its first refresh token, atomically.
    pub async fn insert_session(&self, session: &NewSession<'_>) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, client_id, scope, user_agent, ip, \
             created_at, last_used_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(session.client_id)
        .bind(session.scope)
        .bind(session.user_agent)
        .bind(session.ip)
        .bind(session.created_at)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(session.first_token_hash)
        .bind(session.id)
        .bind(session.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

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

    /// Revokes a session (and so every refresh token of its family). Revoking
    /// a revoked session keeps its first revocation time.
    pub async fn revoke_session(&self, session_id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(session_id)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// The live sessions of a user at `now`, newest first.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, client_id, user_agent, ip, created_at, last_used_at, expires_at \
             FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
             ORDER BY created_at DESC, id",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(SessionRecord {
                    id: row.try_get(0)?,
                    client_id: row.try_get(1)?,
                    user_agent: row.try_get(2)?,
                    ip: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                    last_used_at: row.try_get(5)?,
                    expires_at: row.try_get(6)?,
                })
            })
            .collect()
    }

    /// Whether a session exists, is not revoked and has not expired at `now`.
    pub async fn session_is_live(&self, session_id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT 1 FROM sessions WHERE id = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(session_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Revokes one live session of `user_id`; `false` when there is no such
    /// live session of that user (someone else's id looks the same as none).
    pub async fn revoke_user_session(
        &self,
        user_id: &str,
        session_id: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = ? \
             WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(revoked == 1)
    }

    /// Revokes every live session of `user_id`; returns the ids revoked.
    pub async fn revoke_all_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> =
            sqlx::query("SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids)
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
        sqlx::query(insert)
            .bind(name)
            .bind(candidate)
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("SELECT secret FROM server_secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
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

fn user_from_row(row: AnyRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        email: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        created_at: row.try_get(4)?,
    })
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
