//! Starting the real application on a fresh database, and talking to it.

mod database;
mod reply;
mod requests;
mod smtp;

pub use database::{
    FreshDatabase, fresh_database, galera_node_urls, mysql_server_addr, test_config,
};
use database::{TestDb, authority_of};
pub use reply::Reply;
use reply::form_encode;
pub use smtp::{ReceivedMail, SinkTls, SmtpSink};

use std::sync::Arc;

use gatehouse::AppState;
use gatehouse::clock::SteppedClock;
use gatehouse::config::Config;
use poem::Response;
use poem::endpoint::BoxEndpoint;

use poem::test::TestClient;
use serde_json::Value;
use sqlx::Connection as _;

/// A password that satisfies the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Which store a test runs against: the library's own list of engines.
pub use gatehouse::store::Backend as Store;

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

    /// Starts the app sending mail through `sink`, configured further by
    /// `configure`.
    pub async fn spawn_with_mail(
        store: Store,
        sink: &SmtpSink,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        Self::spawn_with(store, |config| {
            send_mail_through(config, sink);
            configure(config);
        })
        .await
    }

    /// Sends what the outbox holds and is due, pass after pass, until a
    /// pass does nothing; what the passes did, added up.
    pub async fn deliver_mail(&self) -> gatehouse::mail::Pass {
        let mut total = gatehouse::mail::Pass::default();
        for _ in 0..20 {
            let pass = self
                .state
                .mailer
                .deliver_due()
                .await
                .expect("the outbox is readable");
            if pass == gatehouse::mail::Pass::default() {
                return total;
            }
            total.resolved += pass.resolved;
            total.sent += pass.sent;
            total.retried += pass.retried;
            total.failed += pass.failed;
        }
        panic!("the outbox never settled: {total:?}");
    }

    /// A second instance on the same database and data dir (as behind a
    /// load balancer), configured by `configure`.
    pub async fn another_instance(&self, configure: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.config.clone();
        configure(&mut config);
        Self::start(config, self.db.clone(), self.clock.clone()).await
    }
}

/// Points `config`'s mail at `sink`, with its CA trusted when it speaks
/// TLS, and links on a public URL of its own.
pub fn send_mail_through(config: &mut Config, sink: &SmtpSink) {
    config.smtp_url = Some(sink.url());
    config.mail_from = Some("Gatehouse <no-reply@gatehouse.test>".into());
    config.public_url = Some("https://auth.gatehouse.test".into());
    config.smtp_timeout = std::time::Duration::from_secs(2);
    if sink.ca_file().exists() {
        config.smtp_ca_file = Some(sink.ca_file());
    }
}

/// What a test signs an access token for: `sub`'s session `sid`, `profile`.
pub fn grant<'a>(
    user_id: &'a gatehouse::ids::UserId,
    session_id: &'a gatehouse::ids::SessionId,
) -> gatehouse::auth::jwt::Subject<'a> {
    gatehouse::auth::jwt::Subject {
        user_id,
        session_id,
        scope: "profile".to_owned(),
        client_id: "test",
        authenticated_at: {
            use gatehouse::clock::Clock as _;
            gatehouse::clock::SystemClock.now()
        },
        amr: "pwd",
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
