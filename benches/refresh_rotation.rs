//! The refresh transaction alone: 32 tasks, each rotating its own token
//! chain through `Store::refresh_in_transaction` (the exact SQL of
//! `POST /auth/refresh`: lock the session, read, retire, insert, touch,
//! audit, commit) with no HTTP, no JSON and no JWT. Its rate is the
//! ceiling that Gatehouse's `POST /auth/refresh` is compared with
//! (`bench/refresh.sh` runs both in one run).
//!
//! `cargo bench --bench refresh_rotation` (SQLite); set
//! GATEHOUSE_BENCH_MYSQL_URL (e.g. `mysql://root@127.0.0.1:3306`) for MySQL
//! too. GATEHOUSE_BENCH_SECS (default 5), GATEHOUSE_BENCH_TASKS (32) and
//! GATEHOUSE_BENCH_POOL (connections, 10 as `--db-max-connections`).
//! Prints one line per store: `store=… tasks=… commits_per_s=… retries=…`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse::auth::random_token;
use gatehouse::auth::refresh::Successors;
use gatehouse::clock::UnixMillis;
use gatehouse::ids::{SessionId, TokenHash, UserId, UsernameKey};
use gatehouse::store::{
    AuditEvent, NewSession, RefreshOutcome, RefreshWrite, Store, StoreOptions, UserRecord,
};
use secrecy::ExposeSecret as _;
use sqlx::Connection as _;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn now() -> UnixMillis {
    use gatehouse::clock::Clock as _;
    gatehouse::clock::SystemClock.now()
}

async fn measure(label: &str, url: &str, tasks: usize, duration: Duration) {
    let options = StoreOptions {
        max_connections: u32::try_from(setting("GATEHOUSE_BENCH_POOL", 10)).unwrap_or(10),
        timeout: Duration::from_secs(5),
    };
    let store = Store::connect(url, &options)
        .await
        .expect("the store opens");
    store.migrate().await.expect("migrations apply");
    let user = UserRecord {
        id: UserId::generate(),
        username: "bench".into(),
        email: None,
        password_hash: "unused".into(),
        created_at: now(),
        disabled_at: None,
        session_epoch: 0,
        email_verified_at: None,
        mfa_enabled_at: None,
        totp_sealed: None,
        totp_kek_id: None,
    };
    store
        .insert_user(&user, &UsernameKey::of("bench"), None)
        .await
        .expect("a user");
    let key = secrecy::SecretBox::new(Box::new(gatehouse::auth::random_bytes::<32>()));
    let successors = Arc::new(Successors::new(key, None));
    let commits = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let mut chains = Vec::new();
    for _ in 0..tasks {
        let session_id = SessionId::generate();
        let token = random_token().expose_secret().to_owned();
        store
            .insert_session(&NewSession {
                id: &session_id,
                user_id: &user.id,
                client_id: None,
                scope: "profile",
                user_agent: Some("bench"),
                ip: Some("127.0.0.1"),
                created_at: now(),
                expires_at: now() + Duration::from_secs(86_400),
                first_token_hash: &TokenHash::of(&token),
                user_epoch: 0,
                amr: "pwd",
                auth_time: now(),
                client_confidential: false,
            })
            .await
            .expect("a session");
        chains.push(token);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = chains
        .into_iter()
        .map(|mut token| {
            let (store, successors) = (store.clone(), successors.clone());
            let (commits, retries) = (commits.clone(), retries.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let successor = successors.successor(&token, 0).expose_secret().to_owned();
                    let at = now();
                    let outcome = store
                        .refresh_in_transaction(
                            &TokenHash::of(&token),
                            None,
                            at,
                            tokio::time::Instant::now() + Duration::from_secs(5),
                            |state| {
                                let event = AuditEvent {
                                    occurred_at: at,
                                    event: "refresh".into(),
                                    user_id: Some(state.token.user_id.clone()),
                                    session_id: Some(state.token.session_id.clone()),
                                    ip: Some("127.0.0.1".into()),
                                    user_agent: Some("bench".into()),
                                    detail: None,
                                };
                                let successor = TokenHash::of(&successor);
                                (RefreshWrite::Rotate { successor }, Some(event))
                            },
                        )
                        .await;
                    match outcome {
                        Ok(RefreshOutcome::Committed(..)) => {
                            commits.fetch_add(1, Ordering::Relaxed);
                            token = successor;
                        }
                        Ok(other) => panic!("the chain broke: {other:?}"),
                        Err(err) if gatehouse::store::is_transient(&err) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => panic!("{err}"),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("the worker finished");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let commits = commits.load(Ordering::Relaxed);
    println!(
        "store={label} tasks={tasks} commits_per_s={:.0} commits={commits} retries={} secs={elapsed:.1}",
        commits as f64 / elapsed,
        retries.load(Ordering::Relaxed)
    );
    store.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tasks = usize::try_from(setting("GATEHOUSE_BENCH_TASKS", 32)).unwrap_or(32);
    let duration = Duration::from_secs(setting("GATEHOUSE_BENCH_SECS", 5));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    measure("sqlite", &sqlite, tasks, duration).await;
    if let Ok(server) = std::env::var("GATEHOUSE_BENCH_MYSQL_URL") {
        let name = format!("gatehouse_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::MySqlConnection::connect(&server)
            .await
            .expect("MySQL");
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", server.trim_end_matches('/'));
        measure("mysql", &url, tasks, duration).await;
        sqlx::query(&format!("DROP DATABASE `{name}`"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
