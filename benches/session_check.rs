//! What checking the session on every protected request costs.
//!
//! Runs `GET /users/me` through the real app, in one process and one run,
//! with the session check cached (the default, `--session-check-ttl 5s`) and
//! uncached (`0s`: one database query per request), and `GET /health/live`
//! (no token at all) as the floor. Rounds are interleaved so that machine
//! noise hits every variant alike; the result is reported as ratios.
//!
//! `cargo bench --bench session_check` (SQLite); set GATEHOUSE_BENCH_MYSQL_URL
//! (e.g. `mysql://root@127.0.0.1:3306`) to measure on MySQL too.

use std::time::{Duration, Instant};

use gatehouse::config::Config;
use poem::Response;
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use sqlx::Connection as _;

const ROUNDS: usize = 7;
const REQUESTS_PER_ROUND: usize = 400;

struct Variant {
    name: &'static str,
    client: TestClient<BoxEndpoint<'static, Response>>,
    path: &'static str,
    token: Option<String>,
    samples: Vec<Duration>,
}

async fn app(
    url: &str,
    data_dir: &std::path::Path,
    ttl: Duration,
) -> TestClient<BoxEndpoint<'static, Response>> {
    let mut config = Config::defaults();
    config.database.database_url = Some(url.to_owned());
    config.database.data_dir = data_dir.to_owned();
    config.passwords.argon2_memory_kib = 256;
    config.passwords.argon2_iterations = 1;
    config.session_check_ttl = ttl;
    let (app, _state) = gatehouse::build_app(&config).await.expect("the app starts");
    TestClient::new(app)
}

async fn login(client: &TestClient<BoxEndpoint<'static, Response>>) -> String {
    let body = serde_json::json!({"username": "bench", "password": "correct horse battery staple"});
    let _ = client.post("/users").body_json(&body).send().await;
    let response = client.post("/auth/login").body_json(&body).send().await;
    let tokens: serde_json::Value = response.0.into_body().into_json().await.unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn round(variant: &mut Variant) {
    let started = Instant::now();
    for _ in 0..REQUESTS_PER_ROUND {
        let mut request = variant.client.get(variant.path);
        if let Some(token) = &variant.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await;
        assert!(response.0.status().is_success(), "{} failed", variant.name);
    }
    variant
        .samples
        .push(started.elapsed() / REQUESTS_PER_ROUND as u32);
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

async fn measure(store: &str, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cached = app(url, dir.path(), Duration::from_secs(5)).await;
    let uncached = app(url, dir.path(), Duration::ZERO).await;
    let token = login(&cached).await;
    let mut variants = vec![
        Variant {
            name: "health (no auth)",
            client: app(url, dir.path(), Duration::ZERO).await,
            path: "/health/live",
            token: None,
            samples: vec![],
        },
        Variant {
            name: "me, check cached",
            client: cached,
            path: "/users/me",
            token: Some(token.clone()),
            samples: vec![],
        },
        Variant {
            name: "me, check uncached",
            client: uncached,
            path: "/users/me",
            token: Some(token),
            samples: vec![],
        },
    ];
    for variant in &mut variants {
        round(variant).await; // warm-up, not counted
        variant.samples.clear();
    }
    for _ in 0..ROUNDS {
        for variant in &mut variants {
            round(variant).await;
        }
    }
    let base = median(&variants[1].samples);
    println!(
        "{store}: median per request over {ROUNDS} interleaved rounds of {REQUESTS_PER_ROUND}"
    );
    for variant in &variants {
        let m = median(&variant.samples);
        println!(
            "  {:<20} {:>8.1} µs  {:.2}× the cached check",
            variant.name,
            m.as_secs_f64() * 1e6,
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    measure("SQLite", &sqlite).await;
    if let Ok(server) = std::env::var("GATEHOUSE_BENCH_MYSQL_URL") {
        let name = format!("gatehouse_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::MySqlConnection::connect(&server)
            .await
            .expect("the MySQL server");
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .unwrap();
        measure("MySQL", &format!("{}/{name}", server.trim_end_matches('/'))).await;
        sqlx::query(&format!("DROP DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}
