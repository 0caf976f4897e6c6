//! Building the application from its configuration: the store, the keys,
//! the three services and the routes; and the policies the configuration
//! sets. What `main`, the admin commands and the tests share.

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt as _, Response};

use crate::api;
use crate::auth::accounts::RegisterError;
use crate::auth::jwt::AccessTokens;
use crate::auth::keys::{DatabaseKeys, Kek, KeyError, KeyRing, KeySource, RingError, TokenKey};
use crate::auth::password::{HashError, Passwords};
use crate::auth::refresh::{RefreshPolicy, RefreshRotation, Successors};
use crate::auth::session_check::SessionCheck;
use crate::auth::throttle::ThrottlePolicy;
use crate::auth::{Accounts, Audit, Clients, Revoker, SecondFactor, Sessions, Signing};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DatabaseArgs, JwtAlgorithm, KeyArgs, PasswordArgs};
use crate::mail::{MailSettings, Mailer, Sender, SmtpSettings, Transport};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{OpenError, Store, StoreOptions};

/// Where the `iss` of instances started without `--issuer` is kept, so
/// that all of them on one database agree.
pub(crate) const DEFAULT_ISSUER_NAME: &str = "default_issuer";

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
    #[error("no confidential client is called {0:?}")]
    UnknownClient(String),
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
    // The key ring's key-encryption key, or (with a fixed signing key) one
    // that only seals the refresh-token secret.
    let kek = match &keys {
        KeySource::Database(keys) => keys.kek.clone(),
        KeySource::Fixed => load_kek(&config.keys, &config.database)?,
    };
    let successors = Successors::load(&store, &kek, clock.now()).await?;
    let issuer: String = match &config.issuer {
        Some(issuer) => issuer.clone(),
        // Every instance of one database issues and accepts the same `iss`:
        // the first one's default.
        None => {
            store
                .get_or_create_secret(DEFAULT_ISSUER_NAME, &config.issuer(), None, clock.now())
                .await?
                .0
        }
    };
    // Swagger UI's Authorize comes back here (the built-in client's one
    // redirect URI).
    let swagger_receiver = format!(
        "{}{}",
        issuer.trim_end_matches('/'),
        crate::api::SWAGGER_RECEIVER_PATH
    );
    let metrics = Arc::new(Metrics::default());
    let mail_wake = Arc::new(tokio::sync::Notify::new());
    let mfa_kek = kek.clone();
    let mailer = Arc::new(Mailer::new(
        store.clone(),
        kek,
        mail_settings(config, &issuer)?,
        mail_transport(config)?,
        clock.clone(),
        metrics.clone(),
        mail_wake.clone(),
    ));
    let rotation = RefreshRotation {
        store: store.clone(),
        successors,
        policy: refresh_policy(config),
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
    let audit = Audit::with_batch_writer(
        store.clone(),
        metrics.clone(),
        clock.clone(),
        config.audit_batch_window,
    );
    let accounts = Accounts {
        store: store.clone(),
        passwords,
        min_password_chars: config.passwords.min_password_length,
        throttle: throttle_policy(config),
        revoker: revoker.clone(),
        audit: audit.clone(),
        clock: clock.clone(),
        mail_wake,
    };
    let accounts = Arc::new(accounts);
    let clients = Arc::new(Clients {
        store: store.clone(),
        default_client_id: config.default_client_id.clone(),
        builtin_redirect_uris: vec![swagger_receiver],
        known_scopes: config.known_scopes().map_err(StartError::Config)?,
        throttle: throttle_policy(config),
        audit: audit.clone(),
        clock: clock.clone(),
        remember_for: config.session_check_ttl,
        authenticated: quick_cache::sync::Cache::new(crate::auth::clients::AUTHENTICATIONS_KEPT),
    });
    let mfa = Arc::new(SecondFactor {
        store: store.clone(),
        kek: mfa_kek,
        accounts: accounts.clone(),
        throttle: throttle_policy(config),
        revoker: revoker.clone(),
        audit: audit.clone(),
        clock: clock.clone(),
        issuer_name: config.product_name.clone(),
    });
    let sessions = Sessions {
        store: store.clone(),
        accounts: accounts.clone(),
        clients: clients.clone(),
        rotation,
        signing: signing.clone(),
        revoker,
        default_client_id: config.default_client_id.clone(),
        audit,
        clock: clock.clone(),
        live_reads: crate::auth::sessions::LiveSessionReads::new(store.clone(), clock.clone()),
        mfa: mfa.clone(),
    };
    let state = AppState {
        accounts,
        sessions: Arc::new(sessions),
        clients,
        mfa,
        signing,
        mailer,
        store,
        metrics,
        clock,
    };
    let app = api::routes(&http_settings(config))
        .data(state.clone())
        .boxed();
    Ok((app, state))
}

/// How mails are written and paced.
pub(crate) fn mail_settings(config: &Config, issuer: &str) -> Result<MailSettings, StartError> {
    let public_url = config.public_url(issuer);
    let site = public_url
        .split_once("://")
        .map_or(public_url.as_str(), |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let from = config
        .mail_from
        .clone()
        .unwrap_or_else(|| format!("{} <no-reply@localhost>", config.product_name));
    let from = from
        .parse()
        .map_err(|err| StartError::Config(format!("--mail-from {from:?}: {err}")))?;
    Ok(MailSettings {
        sender: Sender {
            from,
            product: config.product_name.clone(),
            site,
        },
        public_url,
        reset_url: config.password_reset_url.clone(),
        verify_url: config.email_verify_url.clone(),
        reset_ttl: config.password_reset_ttl,
        verify_ttl: config.email_verify_ttl,
        per_account_hourly: config.mail_per_account_hourly,
        retry: crate::store::Backoff {
            first: std::time::Duration::from_secs(5),
            max: std::time::Duration::from_secs(300),
        },
        send_deadline: config.smtp_timeout * 3,
    })
}

/// Where mail goes: the SMTP server, the mail directory, or nowhere yet.
pub(crate) fn mail_transport(config: &Config) -> Result<Transport, StartError> {
    match (&config.smtp_url, &config.mail_dir) {
        (Some(url), _) => Transport::smtp(&SmtpSettings {
            url: url.clone(),
            ca_file: config.smtp_ca_file.clone(),
            timeout: config.smtp_timeout,
        })
        .map_err(StartError::Config),
        (None, Some(dir)) => Ok(Transport::Dir(dir.clone())),
        (None, None) => Ok(Transport::None),
    }
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
    Ok(DatabaseKeys::new(load_kek(keys, database)?, overlap, clock))
}

/// The key-encryption key: the configured file, or the one in the data
/// directory (created there the first time).
pub(crate) fn load_kek(keys: &KeyArgs, database: &DatabaseArgs) -> Result<Kek, KeyError> {
    let path = keys.key_encryption_key_path(&database.data_dir);
    if keys.key_encryption_key_file.is_some() {
        Kek::load(&path)
    } else {
        Kek::load_or_create(&path)
    }
}

pub(crate) async fn new_passwords(args: &PasswordArgs) -> Result<Passwords, HashError> {
    let (params, queue) = (args.argon2(), args.argon2_queue);
    let workers = args.argon2_workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let wait = args.argon2_wait;
    tokio::task::spawn_blocking(move || Passwords::with_wait(params, workers, queue, wait)).await?
}

/// The HTTP layer's own settings.
pub(crate) fn http_settings(config: &Config) -> api::HttpSettings {
    api::HttpSettings {
        max_body_bytes: config.max_body_bytes,
        max_header_bytes: config.max_header_bytes,
        request_timeout: config.request_timeout,
        cors_origins: config.cors_origins.clone(),
        metrics_elsewhere: config.metrics_listen.is_some(),
        trusted_proxies: api::TrustedProxies(config.trusted_proxies.clone()),
    }
}

/// How refresh tokens live and rotate.
pub(crate) fn refresh_policy(config: &Config) -> RefreshPolicy {
    RefreshPolicy {
        ttl: config.refresh_ttl,
        idle_ttl: config.refresh_idle_ttl,
        grace: config.refresh_grace,
        replay_window: config.refresh_replay_window,
    }
}

/// How failed logins are throttled.
pub(crate) fn throttle_policy(config: &Config) -> ThrottlePolicy {
    ThrottlePolicy {
        account_free_failures: config.login_free_failures,
        account_spread_free_failures: config.login_spread_free_failures,
        account_backoff_cap: config.login_backoff_cap,
        address_max_failures: config.address_max_failures,
        address_window: config.address_failure_window,
        ..Default::default()
    }
}
