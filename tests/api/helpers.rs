//! Starting the real application on a fresh database, and talking to it.

use std::sync::Arc;

use gatehouse::AppState;
use gatehouse::clock::SteppedClock;
use gatehouse::config::Config;
use poem::Response;
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, StatusCode};
use poem::test::{TestClient, TestResponse};
use serde_json::{Value, json};
use sqlx::Connection as _;

/// The environment variable naming the MySQL server the tests use (an
/// account that may create and drop databases).
pub const MYSQL_URL_VAR: &str = "GATEHOUSE_TEST_MYSQL_URL";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";

/// A password that satisfies the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    MySql,
}

/// Runs each named `async fn name(store: Store)` once per store, as the
/// tests `sqlite::name` and `mysql::name`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Store::Sqlite).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Store::MySql).await
                }
            )*
        }
    };
}

/// A database that exists for one test and is removed after it.
struct TestDb {
    url: String,
    mysql: Option<(String, String)>,
    /// Holds the SQLite file and the generated signing key.
    data_dir: tempfile::TempDir,
}

impl TestDb {
    async fn create(store: Store) -> Self {
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
    async fn create_on_mysql(server: String, data_dir: tempfile::TempDir) -> Self {
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
fn authority_of(url: &str) -> (&str, &str) {
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
pub struct FreshDatabase(#[allow(dead_code)] TestDb);

/// The running application and the database it owns.
pub struct TestApp {
    pub client: TestClient<Arc<BoxEndpoint<'static, Response>>>,
    endpoint: Arc<BoxEndpoint<'static, Response>>,
    pub state: AppState,
    pub config: Config,
    /// The app's clock: `clock.advance(…)` steps over a window of time.
    /// Instances started from this one, and restarts, share it.
    pub clock: Arc<SteppedClock>,
    db: Arc<TestDb>,
}

/// A response, read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn read(response: TestResponse) -> Self {
        let response = response.0;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .into_bytes()
            .await
            .expect("a readable body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status}: the body is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Self {
            status,
            headers,
            body,
        }
    }

    /// A string field of the body.
    pub fn str(&self, field: &str) -> &str {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{field}` in {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, with the body in the message.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts a JSON error answer: the status and the `error` code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(
            self.body["error"], error,
            "unexpected error code in {}",
            self.body
        );
        let text = self
            .body
            .get("message")
            .or_else(|| self.body.get("error_description"));
        assert!(
            text.and_then(Value::as_str).is_some_and(|t| !t.is_empty()),
            "no explanation in {}",
            self.body
        );
        self
    }
}

impl TestApp {
    /// Starts the app on a fresh database of `store`.
    pub async fn spawn(store: Store) -> Self {
        Self::spawn_with(store, |_| {}).await
    }

    /// Starts the app with a configuration adjusted by `configure`.
    pub async fn spawn_with(store: Store, configure: impl FnOnce(&mut Config)) -> Self {
        let (mut config, FreshDatabase(db)) = fresh_database(store).await;
        configure(&mut config);
        Self::start(config, Arc::new(db), Arc::default()).await
    }

    async fn start(config: Config, db: Arc<TestDb>, clock: Arc<SteppedClock>) -> Self {
        let (app, state) = gatehouse::build_app_with_clock(&config, clock.clone())
            .await
            .expect("the app starts");
        let app = Arc::new(app);
        Self {
            client: TestClient::new(app.clone()),
            endpoint: app,
            state,
            config,
            clock,
            db,
        }
    }

    /// Starts the app on a fresh MySQL database that it reaches through
    /// `proxy` (the test creates and drops the database directly).
    pub async fn spawn_through(
        proxy: &crate::proxy::DbProxy,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let (mut config, FreshDatabase(db)) = fresh_database(Store::MySql).await;
        let direct = config.database.database_url.take().unwrap();
        let (authority, _) = authority_of(&direct);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let proxied = direct.replacen(host_port, &proxy.addr().to_string(), 1);
        config.database.database_url = Some(proxied);
        configure(&mut config);
        Self::start(config, Arc::new(db), Arc::default()).await
    }

    /// One instance per node of the Galera cluster (see
    /// [`galera_node_urls`]), all started at once on one fresh database
    /// created through the first node, sharing a data dir and a clock; each
    /// with its own listen address (not listened on: the tests call the
    /// app in process).
    pub async fn spawn_on_galera(configure: impl Fn(&mut Config)) -> Vec<Arc<TestApp>> {
        Self::spawn_on_nodes(&galera_node_urls(), configure).await
    }

    /// [`TestApp::spawn_on_galera`] with the nodes reached at `nodes`
    /// (MySQL URLs without a database; through proxies, say).
    pub async fn spawn_on_nodes(
        nodes: &[String],
        configure: impl Fn(&mut Config),
    ) -> Vec<Arc<TestApp>> {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let db = Arc::new(TestDb::create_on_mysql(nodes[0].clone(), data_dir).await);
        let name = &db.mysql.as_ref().expect("a MySQL database").1;
        // The database was created through the first node; the others
        // create it when they apply that, which may be later.
        for node in nodes {
            let mut conn = sqlx::MySqlConnection::connect(node).await.unwrap();
            sqlx::query("SET SESSION wsrep_sync_wait = 1")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|err| panic!("{node} has the database {name}: {err}"));
            conn.close().await.unwrap();
        }
        let clock = Arc::<SteppedClock>::default();
        let starts = nodes.iter().enumerate().map(|(index, node)| {
            let mut config = test_config();
            config.listen = ([127, 0, 0, 1], 18500 + index as u16).into();
            config.database.database_url = Some(format!("{node}/{name}"));
            config.database.data_dir = db.data_dir.path().to_owned();
            configure(&mut config);
            Self::start(config, db.clone(), clock.clone())
        });
        futures::future::join_all(starts)
            .await
            .into_iter()
            .map(Arc::new)
            .collect()
    }

    /// `count` instances started at once on one fresh database of `store`
    /// and one data dir; `configure` is given each one's index.
    pub async fn spawn_together(
        store: Store,
        count: usize,
        configure: impl Fn(usize, &mut Config),
    ) -> Vec<TestApp> {
        let (config, FreshDatabase(db)) = fresh_database(store).await;
        let (db, clock) = (Arc::new(db), Arc::<SteppedClock>::default());
        let starts = (0..count).map(|index| {
            let mut config = config.clone();
            configure(index, &mut config);
            Self::start(config, db.clone(), clock.clone())
        });
        futures::future::join_all(starts).await
    }

    /// A second instance on the same database and data dir (as behind a
    /// load balancer), configured by `configure`.
    pub async fn another_instance(&self, configure: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.config.clone();
        configure(&mut config);
        Self::start(config, self.db.clone(), self.clock.clone()).await
    }

    /// A form POST as if from the client address `peer` (the in-process
    /// client has none), through the same endpoint.
    pub async fn post_form_from(
        &self,
        peer: &str,
        headers: &[(&str, &str)],
        path: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        use poem::Endpoint as _;
        let mut builder = poem::http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let peer: std::net::SocketAddr = peer.parse().expect("ip:port");
        let remote = poem::web::RemoteAddr(poem::Addr::SocketAddr(peer));
        let local = poem::web::LocalAddr::default();
        let parts = poem::RequestParts::from((parts, local, remote, poem::http::uri::Scheme::HTTP));
        let request = poem::Request::from_parts(parts, poem::Body::from(form_encode(form)));
        let response = self
            .endpoint
            .call(request)
            .await
            .expect("the app answers every request");
        Reply::read(poem::test::TestResponse(response)).await
    }

    /// Stops the app and starts it again on the same database and data dir.
    pub async fn restart(self) -> Self {
        let Self {
            state,
            config,
            clock,
            db,
            client,
            endpoint,
        } = self;
        drop((client, endpoint));
        state.store.close().await;
        drop(state);
        Self::start(config, db, clock).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        Reply::read(self.client.post(path).body_json(body).send().await).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        Reply::read(self.client.post(path).form(&form).send().await).await
    }

    pub async fn post_form_with_authorization(
        &self,
        path: &str,
        authorization: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        let request = self
            .client
            .post(path)
            .header("Authorization", authorization)
            .form(&form);
        Reply::read(request.send().await).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        Reply::read(
            self.client
                .get(path)
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await,
        )
        .await
    }

    pub async fn register(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/users",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Registers `username` with [`PASSWORD`] and logs in: the token response.
    pub async fn user_with_tokens(&self, username: &str) -> Reply {
        self.register(username, PASSWORD).await.assert_status(201);
        let tokens = self.login(username, PASSWORD).await;
        tokens.assert_status(200);
        tokens
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post_json("/auth/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// Disables (or enables) the account `username` as `gatehouse user
    /// disable` does; whether it exists.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> bool {
        self.state
            .accounts
            .set_disabled(username, disabled)
            .await
            .expect("the store answers")
    }

    /// Asserts that the session of `tokens` (a login's or a refresh's
    /// answer) has ended: its refresh token and its access token are refused.
    pub async fn assert_session_ended(&self, tokens: &Reply) {
        self.refresh(tokens.str("refresh_token"))
            .await
            .assert_error(400, "invalid_grant");
        self.me(tokens.str("access_token"))
            .await
            .assert_error(401, "invalid_token");
    }

    pub async fn me(&self, access_token: &str) -> Reply {
        self.get_with_token("/users/me", access_token).await
    }

    /// An access token this app signs for the session of `claims` (another
    /// token's), with `scope`, issued at `issued_at` (Unix ms).
    pub fn sign_access_token(&self, claims: &Value, scope: &str, issued_at: i64) -> String {
        let user_id = claims["sub"].as_str().expect("a sub").into();
        let session_id = claims["sid"].as_str().expect("a sid").into();
        let grant = gatehouse::auth::jwt::Grant {
            user_id: &user_id,
            session_id: &session_id,
            scope: scope.to_owned(),
            client_id: "test",
            authenticated_at: issued_at,
        };
        self.state
            .signing
            .issue(&grant, issued_at)
            .expect("a signed token")
    }
}

/// `application/x-www-form-urlencoded`.
fn form_encode(form: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What a test signs an access token for: `sub`'s session `sid`, `profile`.
pub fn grant<'a>(
    user_id: &'a gatehouse::ids::UserId,
    session_id: &'a gatehouse::ids::SessionId,
) -> gatehouse::auth::jwt::Grant<'a> {
    gatehouse::auth::jwt::Grant {
        user_id,
        session_id,
        scope: "profile".to_owned(),
        client_id: "test",
        authenticated_at: chrono::Utc::now().timestamp_millis(),
    }
}

/// The claims of a JWT, decoded without verifying it.
pub fn claims_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Sends many requests at once from separate tasks.
pub async fn concurrently<F, Fut>(app: &Arc<TestApp>, count: usize, request: F) -> Vec<Reply>
where
    F: Fn(Arc<TestApp>) -> Fut,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let tasks: Vec<_> = (0..count)
        .map(|_| tokio::spawn(request(app.clone())))
        .collect();
    let mut replies = Vec::with_capacity(count);
    for task in tasks {
        replies.push(task.await.expect("the request task finished"));
    }
    replies
}
