//! A database per test: a fresh SQLite file or MySQL database, dropped
//! after it; and where the MySQL server and the Galera nodes are.

use sqlx::Connection as _;

use super::Store;
use gatehouse::config::Config;

/// The environment variable naming the MySQL server the tests use (an
/// account that may create and drop databases).
pub const MYSQL_URL_VAR: &str = "GATEHOUSE_TEST_MYSQL_URL";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";

/// A database that exists for one test and is removed after it.
pub(super) struct TestDb {
    pub(super) url: String,
    pub(super) mysql: Option<(String, String)>,
    /// Holds the SQLite file and the generated signing key.
    pub(super) data_dir: tempfile::TempDir,
}

impl TestDb {
    pub(super) async fn create(store: Store) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        match store {
            Store::Sqlite => {
                let url = format!(
                    "sqlite://{}",
                    data_dir.path().join("gatehouse.db").display()
                );
                Self {
                    url,
                    mysql: None,
                    data_dir,
                }
            }
            Store::MySql => Self::create_on_mysql(mysql_server_url(), data_dir).await,
        }
    }

    /// A fresh database on the MySQL server at `server` (a URL without a
    /// database).
    pub(super) async fn create_on_mysql(server: String, data_dir: tempfile::TempDir) -> Self {
        let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::MySqlConnection::connect(&server)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "the MySQL tests need a MySQL/MariaDB server at {server} ({err}); \
                     start one or point {MYSQL_URL_VAR} at an account that may create databases \
                     (the galera tests: tests/galera/cluster.sh start, or {GALERA_NODES_VAR})"
                )
            });
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let url = format!("{}/{name}", server.trim_end_matches('/'));
        Self {
            url,
            mysql: Some((server, name)),
            data_dir,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.mysql.take() else {
            return;
        };
        // Drop runs inside the test's runtime; dropping the database needs a
        // runtime of its own, so it runs on a plain thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn = sqlx::MySqlConnection::connect(&server).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop the test database: {dropped:?}");
        }
    }
}

/// The environment variable listing the SQL addresses of the Galera
/// cluster's nodes that the `galera` tests use (`host:port,host:port,…`,
/// user root without a password; default: `tests/galera/cluster.sh`'s).
pub const GALERA_NODES_VAR: &str = "GATEHOUSE_TEST_GALERA_NODES";
const DEFAULT_GALERA_NODES: &str = "127.0.0.1:13306,127.0.0.1:13307,127.0.0.1:13308";

/// The MySQL URLs (without a database) of the Galera cluster's nodes.
pub fn galera_node_urls() -> Vec<String> {
    std::env::var(GALERA_NODES_VAR)
        .ok()
        .filter(|nodes| !nodes.is_empty())
        .unwrap_or_else(|| DEFAULT_GALERA_NODES.to_owned())
        .split(',')
        .map(|node| format!("mysql://root@{}", node.trim()))
        .collect()
}

/// The address of the MySQL server the tests use, for a proxy to forward to.
pub fn mysql_server_addr() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs as _;
    let url = mysql_server_url();
    let (authority, _) = authority_of(&url);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("{MYSQL_URL_VAR}: no TCP address in {url}"))
}

/// The `user@host:port` part of a URL, and what follows it.
pub(super) fn authority_of(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split_once('/').unwrap_or((rest, ""))
}

fn mysql_server_url() -> String {
    std::env::var(MYSQL_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_MYSQL_URL.to_owned())
}

/// The configuration tests start with: production defaults, except cheap
/// Argon2 parameters (passed explicitly) and a fresh database.
pub fn test_config() -> Config {
    let mut config = Config::defaults();
    config.passwords.argon2_memory_kib = 256;
    config.passwords.argon2_iterations = 1;
    config.issuer = Some("http://gatehouse.test".into());
    config
}

/// A fresh database (and data dir) that no app has started on, with the
/// test configuration pointing at it. It is dropped with the guard.
pub async fn fresh_database(store: Store) -> (Config, FreshDatabase) {
    let db = TestDb::create(store).await;
    let mut config = test_config();
    config.database.database_url = Some(db.url.clone());
    config.database.data_dir = db.data_dir.path().to_owned();
    (config, FreshDatabase(db))
}

/// Keeps a [`fresh_database`] alive.
pub struct FreshDatabase(#[allow(dead_code)] pub(super) TestDb);

impl crate::helpers::TestApp {
    /// Runs `sql` on the app's database over a connection of its own: for
    /// states the app itself no longer writes (an earlier version's rows).
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.config.database.url())
            .await
            .expect("a connection to the app's database");
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
        conn.close().await.expect("the connection closes");
    }

    /// The first column of every row `sql` selects, as text.
    pub async fn query_strings(&self, sql: &str) -> Vec<String> {
        use sqlx::{Connection as _, Row as _};
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.config.database.url())
            .await
            .expect("a connection to the app's database");
        let rows = sqlx::query(sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
        conn.close().await.expect("the connection closes");
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).expect("a text column"))
            .collect()
    }
}
