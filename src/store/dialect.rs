//! What differs between the engines, in one place: MySQL/MariaDB (and
//! Galera) against SQLite. Error codes, locking statements, insert-if-absent
//! and upsert, the SQLite file's set-up, and telling a Galera node from a
//! plain server. (What is the same everywhere but still not portable to a
//! third engine: `?` placeholders, and `script.rs`'s MySQL literal writer.)

use sqlx::{AnyConnection, AnyPool, Executor as _, Row as _};

use super::script::Delivery;
use super::{Backend, OpenError, Store};

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

/// Whether `err` says the connection itself failed (rather than that the
/// database refused a statement), so that it cannot be trusted again.
pub(super) fn is_broken_connection(err: &sqlx::Error) -> bool {
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

/// `SELECT … FOR UPDATE` where the engine has row locks; SQLite's write
/// transactions (begun with [`begin_write`]) lock the database.
pub(super) fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// The statement that begins a transaction that will write. On SQLite it
/// takes the write lock at once (waiting on the busy timeout), so a
/// transaction never fails to upgrade a read lock midway.
pub(super) fn begin_write(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => "BEGIN",
        Backend::Sqlite => "BEGIN IMMEDIATE",
    }
}

/// `INSERT INTO table (columns) VALUES (?, …)` that inserts nothing, and
/// fails nothing, when the unique `key` is taken.
pub(super) fn insert_if_absent(
    backend: Backend,
    table: &str,
    columns: &[&str],
    key: &str,
) -> String {
    let insert = insert_values(table, columns);
    match backend {
        Backend::MySql => insert.replacen("INSERT", "INSERT IGNORE", 1),
        Backend::Sqlite => format!("{insert} ON CONFLICT ({key}) DO NOTHING"),
    }
}

/// `INSERT INTO table (columns) VALUES (?, …)` that, when the unique `key`
/// is taken, updates that row by `set` instead (`a = …, b = …`, in which a
/// bare column name is the stored row's value, on either engine).
pub(super) fn upsert(
    backend: Backend,
    table: &str,
    columns: &[&str],
    key: &str,
    set: &str,
) -> String {
    let insert = insert_values(table, columns);
    match backend {
        Backend::MySql => format!("{insert} ON DUPLICATE KEY UPDATE {set}"),
        Backend::Sqlite => format!("{insert} ON CONFLICT ({key}) DO UPDATE SET {set}"),
    }
}

fn insert_values(table: &str, columns: &[&str]) -> String {
    let places = vec!["?"; columns.len()].join(", ");
    format!(
        "INSERT INTO {table} ({}) VALUES ({places})",
        columns.join(", ")
    )
}

impl Store {
    /// [`for_update`] for this store.
    pub(super) fn for_update(&self) -> &'static str {
        for_update(self.backend)
    }

    /// [`begin_write`] for this store.
    pub(super) fn begin_write(&self) -> &'static str {
        begin_write(self.backend)
    }
}

/// The URL to connect to: SQLite's is prepared ([`prepare_sqlite_url`]).
pub(super) fn prepare_url(backend: Backend, url: &str) -> Result<String, OpenError> {
    match backend {
        Backend::Sqlite => prepare_sqlite_url(url),
        Backend::MySql => Ok(url.to_owned()),
    }
}

/// Sets up each new connection. SQLite: WAL lets readers proceed while one
/// writer commits, and writers queue on the busy timeout instead of failing.
/// MySQL: [`read_your_writes_on_galera`].
pub(super) async fn set_up_connection(
    backend: Backend,
    conn: &mut AnyConnection,
) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => conn
            .execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
            )
            .await
            .map(drop),
        Backend::MySql => read_your_writes_on_galera(conn).await,
    }
}

/// How a transaction's statements travel to the engine behind `pool`.
pub(super) async fn delivery(backend: Backend, pool: &AnyPool) -> Result<Delivery, sqlx::Error> {
    Ok(match backend {
        Backend::Sqlite => Delivery::OneByOne,
        // A Galera node has been seen to go on with a script's later
        // statements after it aborted the transaction for a conflicting
        // write from another node, committing them: one at a time there.
        Backend::MySql if is_galera(pool).await? => Delivery::OneByOne,
        Backend::MySql => Delivery::OneScript,
    })
}

/// The table of the migration lock, created if absent.
pub(super) fn create_lock_table(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => {
            "CREATE TABLE IF NOT EXISTS gatehouse_locks (\
             name VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY, \
             owner CHAR(36) CHARACTER SET ascii NOT NULL, \
             expires_at BIGINT NOT NULL) ENGINE = InnoDB"
        }
        Backend::Sqlite => {
            "CREATE TABLE IF NOT EXISTS gatehouse_locks (\
             name TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, \
             expires_at INTEGER NOT NULL)"
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
        make_private_database(std::path::Path::new(path)).map_err(|source| {
            OpenError::PrivateFile {
                path: path.to_owned(),
                source,
            }
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

/// Makes the SQLite file at `path` (and its WAL and shared-memory files,
/// which SQLite creates with the database's own mode) readable by its owner
/// only: it is created so if it does not exist, and tightened, with a
/// warning, if it exists with looser permissions (a data directory made
/// before Gatehouse ran, say). It holds password hashes and sealed keys.
fn make_private_database(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        let mut files = vec![path.to_owned()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push(name.into());
        }
        for file in files {
            let Ok(metadata) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                tracing::warn!(
                    path = %file.display(),
                    was = format!("{:o}", mode & 0o777),
                    "the database file was readable by others than its owner: now 0600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_if_absent_and_upserts_are_written_for_each_engine() {
        let columns = ["name", "value"];
        assert_eq!(
            insert_if_absent(Backend::MySql, "t", &columns, "name"),
            "INSERT IGNORE INTO t (name, value) VALUES (?, ?)"
        );
        assert_eq!(
            insert_if_absent(Backend::Sqlite, "t", &columns, "name"),
            "INSERT INTO t (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
        );
        assert_eq!(
            upsert(Backend::MySql, "t", &columns, "name", "value = value + 1"),
            "INSERT INTO t (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = value + 1"
        );
        assert_eq!(
            upsert(Backend::Sqlite, "t", &columns, "name", "value = value + 1"),
            "INSERT INTO t (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = value + 1"
        );
    }
}
