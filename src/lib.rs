//! Gatehouse: an OpenAPI-first authentication service.
//!
//! [`build_app`] is what `main` and the tests share: it opens and migrates
//! the database, loads the signing key and returns the routes and state.

mod admin;
pub mod api;
mod audit;
pub mod auth;
pub mod clock;
pub mod config;
mod error;
pub mod ids;
mod metrics;
mod server;
pub mod store;

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt as _, Response};
use secrecy::{ExposeSecret as _, SecretString};

use crate::auth::accounts::RegisterError;
use crate::auth::jwt::AccessTokens;
use crate::auth::keys::{DatabaseKeys, Kek, KeyError, KeyRing, KeySource, RingError, TokenKey};
use crate::auth::password::{HashError, Passwords};
use crate::auth::refresh::{SUCCESSOR_SECRET_NAME, Successors};
use crate::auth::refresh_rotation::RefreshRotation;
use crate::auth::session_check::SessionCheck;
use crate::auth::{Accounts, Audit, Revoker, Sessions, Signing};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DatabaseArgs, JwtAlgorithm, KeyArgs, PasswordArgs};
use crate::store::{OpenError, Store, StoreOptions};

pub use admin::{
    create_user, list_keys, migrate, reseal_keys, reset_keys, rotate_keys, set_user_disabled,
};

/// Where the `iss` of instances started without `--issuer` is kept, so
/// that all of them on one database agree.
const DEFAULT_ISSUER_NAME: &str = "default_issuer";

/// What every request handler shares: the three services, and what they
/// are built on.
#[derive(Debug, Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub sessions: Arc<Sessions>,
    pub signing: Arc<Signing>,
    pub store: Store,
    pub metrics: Arc<metrics::Metrics>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Whose `X-Forwarded-For` names the client (see `--trusted-proxies`).
    pub(crate) trusted_proxies: Arc<api::TrustedProxies>,
}

/// Why Gatehouse could not start or an admin command failed. Each is
/// reported as one line and exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] OpenError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error("{0}")]
    Passwords(#[from] HashError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("cannot read the password from standard input: {0}")]
    ReadPassword(std::io::Error),
    #[error("cannot create the user: {0}")]
    CreateUser(RegisterError),
    #[error("no user is called {0:?}")]
    UnknownUser(String),
    #[error("{0}")]
    Admin(crate::error::Error),
}

/// Connects to and migrates the configured database.
pub async fn open_store(database: &DatabaseArgs) -> Result<Store, OpenError> {
    let options = StoreOptions {
        max_connections: database.db_max_connections,
        timeout: database.db_timeout,
    };
    let store = Store::connect(&database.url(), &options).await?;
    store.migrate().await?;
    Ok(store)
}

/// Builds the application: the routes with their middleware, and the state.
pub async fn build_app(
    config: &Config,
) -> Result<(BoxEndpoint<'static, Response>, AppState), StartError> {
    build_app_with_clock(config, Arc::new(SystemClock)).await
}

/// [`build_app`] with time read from `clock`.
pub async fn build_app_with_clock(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<(BoxEndpoint<'static, Response>, AppState), StartError> {
    config.validate().map_err(StartError::Config)?;
    let fixed_key = fixed_signing_key(&config.keys)?;
    let store = open_store(&config.database).await?;
    let (ring, keys) = match fixed_key {
        Some(key) => (KeyRing::from(key), KeySource::Fixed),
        None => {
            let overlap = config.access_ttl + config.jwt_leeway + config.key_reload_interval;
            let keys = database_keys(&config.keys, &config.database, overlap, clock.clone())?;
            let ring = keys
                .load(&store, &KeyArgs::legacy_key_path(&config.database.data_dir))
                .await?;
            (ring, KeySource::Database(keys))
        }
    };
    let passwords = new_passwords(&config.passwords).await?;
    let candidate = auth::random_token();
    let secret = store
        .get_or_create_secret(
            SUCCESSOR_SECRET_NAME,
            candidate.expose_secret(),
            clock.now_millis(),
        )
        .await?;
    let issuer = match &config.issuer {
        Some(issuer) => issuer.clone(),
        // Every instance of one database issues and accepts the same `iss`:
        // the first one's default.
        None => {
            store
                .get_or_create_secret(DEFAULT_ISSUER_NAME, &config.issuer(), clock.now_millis())
                .await?
        }
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let rotation = RefreshRotation {
        store: store.clone(),
        successors: Successors::new(SecretString::from(secret)),
        policy: config.refresh_policy(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        deadline: config.database.db_timeout,
    };
    let tokens = AccessTokens::new(
        ring,
        issuer,
        config.audience.clone(),
        config.access_ttl,
        config.jwt_leeway,
    );
    let signing = Arc::new(Signing::new(tokens, keys, store.clone(), clock.clone()));
    let check = SessionCheck::new(config.session_check_ttl, config.session_cache_entries);
    let revoker = Revoker::new(store.clone(), Arc::new(check), clock.clone());
    let audit = Audit::new(store.clone(), metrics.clone(), clock.clone());
    let accounts = Accounts {
        store: store.clone(),
        passwords,
        min_password_chars: config.passwords.min_password_length,
        throttle: config.throttle(),
        revoker: revoker.clone(),
        audit: audit.clone(),
        clock: clock.clone(),
    };
    let sessions = Sessions {
        store: store.clone(),
        rotation,
        signing: signing.clone(),
        revoker,
        default_client_id: config.default_client_id.clone(),
        audit,
        clock: clock.clone(),
    };
    let state = AppState {
        accounts: Arc::new(accounts),
        sessions: Arc::new(sessions),
        signing,
        store,
        metrics,
        clock,
        trusted_proxies: Arc::new(api::TrustedProxies(config.trusted_proxies.clone())),
    };
    let app = api::routes(&config.http()).data(state.clone()).boxed();
    Ok((app, state))
}

/// The one key configured by file, or `None` when keys live in the database.
fn fixed_signing_key(keys: &KeyArgs) -> Result<Option<TokenKey>, KeyError> {
    match (
        keys.jwt_algorithm,
        &keys.hs256_secret_file,
        &keys.signing_key_file,
    ) {
        (JwtAlgorithm::Hs256, Some(secret), _) => TokenKey::load_hs256(secret).map(Some),
        (_, _, Some(key)) => TokenKey::load(key).map(Some),
        _ => Ok(None),
    }
}

/// The database key ring's settings, with its key-encryption key (created
/// in the data directory unless configured).
pub(crate) fn database_keys(
    keys: &KeyArgs,
    database: &DatabaseArgs,
    overlap: std::time::Duration,
    clock: Arc<dyn Clock>,
) -> Result<DatabaseKeys, KeyError> {
    let path = keys.key_encryption_key_path(&database.data_dir);
    let kek = if keys.key_encryption_key_file.is_some() {
        Kek::load(&path)?
    } else {
        Kek::load_or_create(&path)?
    };
    Ok(DatabaseKeys::new(kek, overlap, clock))
}

pub(crate) async fn new_passwords(args: &PasswordArgs) -> Result<Passwords, HashError> {
    let (params, queue) = (args.argon2(), args.argon2_queue);
    let workers = args.argon2_workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let wait = args.argon2_wait;
    tokio::task::spawn_blocking(move || Passwords::with_wait(params, workers, queue, wait)).await?
}

/// Serves until SIGTERM or SIGINT, then drains in-flight requests.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let (app, state) = build_app(&config).await?;
    let listener = server::listen(config.listen).map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let local = listener
        .local_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default();
    tracing::info!(
        listen = %local,
        backend = ?state.store.backend(),
        kid = state.signing.signing_key().kid(),
        "gatehouse is serving; Swagger UI at http://{local}/docs"
    );
    let pruner = tokio::spawn(prune_periodically(
        state.clone(),
        config.prune_interval,
        config.revoked_retention,
    ));
    let reloader = tokio::spawn(reload_keys_periodically(
        state.signing.clone(),
        config.key_reload_interval,
    ));
    let open_files = server::raise_open_file_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| open_files.map_or(1024, |limit| limit.saturating_sub(128).max(16)));
    tracing::info!(
        open_file_limit = open_files,
        max_connections,
        "connection limits"
    );
    let limits = server::ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        max_connections,
        shutdown_timeout: config.shutdown_timeout,
    };
    server::run(listener, app, limits, shutdown_signal())
        .await
        .map_err(StartError::Serve)?;
    pruner.abort();
    reloader.abort();
    state.store.close().await;
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// Deletes dead sessions and stale counters every `interval`, so tables do
/// not grow without bound. Failures are logged and retried next time.
async fn prune_periodically(
    state: AppState,
    interval: std::time::Duration,
    retention: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    let counters_window = state.accounts.throttle().longest_window();
    loop {
        ticks.tick().await;
        let now = state.clock.now_millis();
        match state.sessions.prune(now, retention, counters_window).await {
            Ok((sessions, counters)) => tracing::info!(sessions, counters, "pruned"),
            Err(err) => tracing::warn!(error = %err, "pruning failed"),
        }
        match state.signing.prune(now).await {
            Ok(0) => {}
            Ok(keys) => tracing::info!(keys, "deleted retired signing keys"),
            Err(err) => tracing::warn!(error = %err, "pruning signing keys failed"),
        }
    }
}

/// Re-reads the signing keys every `interval`, so rotations reach this
/// instance. Failures are logged; the keys in use stay.
async fn reload_keys_periodically(signing: Arc<Signing>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(err) = signing.reload().await {
            tracing::warn!(error = %err, "cannot reload the signing keys");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler cannot fail on Unix");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested: draining in-flight requests");
}
