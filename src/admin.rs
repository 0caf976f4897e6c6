//! The admin commands: `gatehouse migrate`, `user …` and `keys …`. Each
//! opens the store itself and reports failures as a [`StartError`].

use std::io::BufRead as _;
use std::sync::Arc;

use secrecy::SecretString;

use crate::audit::AuditKind;
use crate::auth::clients::{Client, NewClient, RegisterClientError};
use crate::auth::keys::{DatabaseKeys, RingError, Rotation};
use crate::auth::refresh::Successors;
use crate::auth::session_check::SessionCheck;
use crate::auth::throttle::ThrottlePolicy;
use crate::auth::{Accounts, Audit, Clients, Revoker, SecondFactor};
use crate::clock::{Clock, SystemClock};
use crate::config::{DatabaseArgs, KeyArgs, PasswordArgs};
use crate::startup::{
    DEFAULT_ISSUER_NAME, StartError, database_keys, load_kek, new_passwords, open_store,
};
use crate::store::{AuditEvent, SigningKeyRecord, Store};

/// `gatehouse migrate`.
pub async fn migrate(database: &DatabaseArgs) -> Result<(), StartError> {
    let store = open_store(database).await?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// The accounts service for `gatehouse user …`: the store and the password
/// hasher. Sessions it revokes are dropped from no cache but the store's:
/// serving instances see that within `--session-check-ttl`.
async fn admin_accounts(
    database: &DatabaseArgs,
    password_args: &PasswordArgs,
) -> Result<(Accounts, Store), StartError> {
    let store = open_store(database).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let uncached = Arc::new(SessionCheck::new(std::time::Duration::ZERO, 1));
    let accounts = Accounts {
        store: store.clone(),
        passwords: new_passwords(password_args).await?,
        min_password_chars: password_args.min_password_length,
        throttle: ThrottlePolicy::default(),
        revoker: Revoker::new(store.clone(), uncached, clock.clone()),
        audit: Audit::new(store.clone(), Arc::default(), clock.clone()),
        clock,
        // Mails queued here are sent by the serving instances' pass.
        mail_wake: Arc::default(),
    };
    Ok((accounts, store))
}

/// `gatehouse user create`: the password comes from standard input (a
/// prompt without echo on a terminal), never from the command line.
pub async fn create_user(
    username: &str,
    email: Option<&str>,
    database: &DatabaseArgs,
    password_args: &PasswordArgs,
) -> Result<(), StartError> {
    let password = read_password().map_err(StartError::ReadPassword)?;
    let (accounts, store) = admin_accounts(database, password_args).await?;
    let user = accounts
        .register(username, password, email)
        .await
        .map_err(StartError::CreateUser)?;
    store.close().await;
    println!("{}", user.id);
    Ok(())
}

/// `gatehouse user disable` / `enable`.
pub async fn set_user_disabled(
    username: &str,
    disabled: bool,
    database: &DatabaseArgs,
    password_args: &PasswordArgs,
) -> Result<(), StartError> {
    let (accounts, store) = admin_accounts(database, password_args).await?;
    let found = accounts
        .set_disabled(username, disabled)
        .await
        .map_err(StartError::Admin)?;
    store.close().await;
    if found {
        Ok(())
    } else {
        Err(StartError::UnknownUser(username.to_owned()))
    }
}

/// `gatehouse user mfa-reset`: removes the user's second factor (for
/// someone who lost their phone and their recovery codes); whether it had
/// one.
pub async fn reset_user_mfa(username: &str, database: &DatabaseArgs) -> Result<bool, StartError> {
    let store = open_store(database).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let audit = Audit::new(store.clone(), Arc::default(), clock);
    let reset = SecondFactor::reset(&store, &audit, username).await;
    store.close().await;
    reset
        .map_err(StartError::Admin)?
        .ok_or_else(|| StartError::UnknownUser(username.to_owned()))
}

/// The client registry for `gatehouse client …`.
async fn client_registry(args: &crate::config::ClientArgs) -> Result<(Clients, Store), StartError> {
    let store = open_store(&args.database).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let clients = Clients {
        store: store.clone(),
        default_client_id: args.default_client_id.clone(),
        builtin_redirect_uris: Vec::new(),
        known_scopes: crate::config::known_scopes(&args.scopes).map_err(StartError::Config)?,
        throttle: ThrottlePolicy::default(),
        audit: Audit::new(store.clone(), Arc::default(), clock.clone()),
        clock,
        remember_for: std::time::Duration::ZERO,
        authenticated: quick_cache::sync::Cache::new(1),
    };
    Ok((clients, store))
}

/// A client as `gatehouse client` prints it (never its secret's hash).
fn client_json(client: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": client.id,
        "name": client.name,
        "confidential": client.confidential,
        "first_party": client.first_party,
        "grant_types": client.grant_types,
        "redirect_uris": client.redirect_uris,
        "scopes": client.scopes,
        "disabled": client.disabled,
    })
}

/// `gatehouse client create`: the client, with its secret if confidential.
pub async fn create_client(
    new: NewClient,
    args: &crate::config::ClientArgs,
) -> Result<serde_json::Value, StartError> {
    let (clients, store) = client_registry(args).await?;
    let registered = clients.register(new).await;
    store.close().await;
    let (client, secret) = registered.map_err(|err| match err {
        RegisterClientError::Internal(err) => StartError::Admin(err),
        refused => StartError::Config(refused.to_string()),
    })?;
    let mut json = client_json(&client);
    if let Some(secret) = secret {
        json["client_secret"] = secrecy::ExposeSecret::expose_secret(&secret).into();
    }
    Ok(json)
}

/// `gatehouse client list`.
pub async fn list_clients(
    args: &crate::config::ClientArgs,
) -> Result<serde_json::Value, StartError> {
    let (clients, store) = client_registry(args).await?;
    let listed = clients.list().await.map_err(StartError::Admin);
    store.close().await;
    Ok(listed?.iter().map(client_json).collect())
}

/// `gatehouse client disable`.
pub async fn disable_client(
    client_id: &str,
    args: &crate::config::ClientArgs,
) -> Result<(), StartError> {
    let (clients, store) = client_registry(args).await?;
    let found = clients.disable(client_id).await.map_err(StartError::Admin);
    store.close().await;
    if found? {
        Ok(())
    } else {
        Err(StartError::UnknownClient(client_id.to_owned()))
    }
}

/// `gatehouse client rotate-secret`: the new secret.
pub async fn rotate_client_secret(
    client_id: &str,
    args: &crate::config::ClientArgs,
) -> Result<serde_json::Value, StartError> {
    let (clients, store) = client_registry(args).await?;
    let rotated = clients
        .rotate_secret(client_id)
        .await
        .map_err(StartError::Admin);
    store.close().await;
    match rotated? {
        Some(secret) => Ok(serde_json::json!({
            "client_id": client_id,
            "client_secret": secrecy::ExposeSecret::expose_secret(&secret),
        })),
        None => Err(StartError::UnknownClient(client_id.to_owned())),
    }
}

/// What `gatehouse user reset-link` needs besides the user.
#[derive(Debug, Clone)]
pub struct ResetLinkArgs {
    pub public_url: Option<String>,
    pub password_reset_url: Option<String>,
    pub ttl: std::time::Duration,
    pub issuer: Option<String>,
}

/// `gatehouse user reset-link`: a password reset link for `username`, as a
/// mail would carry it, for installs without mail.
pub async fn reset_link(
    username: &str,
    database: &DatabaseArgs,
    args: &ResetLinkArgs,
) -> Result<String, StartError> {
    let store = open_store(database).await?;
    let now = SystemClock.now();
    let Some(user) = store
        .find_user_by_key(&crate::ids::UsernameKey::of(username))
        .await?
    else {
        return Err(StartError::UnknownUser(username.to_owned()));
    };
    let base = match (&args.public_url, &args.issuer) {
        (Some(url), _) | (None, Some(url)) => url.clone(),
        (None, None) => store
            .find_secret(DEFAULT_ISSUER_NAME)
            .await?
            .ok_or_else(|| {
                StartError::Config(
                    "no --public-url, no --issuer, and no serving instance stored its issuer yet"
                        .into(),
                )
            })?,
    };
    let kind = crate::store::MailKind::PasswordReset;
    let (_, token, record) =
        crate::mail::new_token(kind, &user.id, user.email.as_deref(), now, args.ttl);
    store.insert_account_token(&record).await?;
    let event = AuditEvent {
        occurred_at: now,
        event: AuditKind::PasswordResetRequested.as_str().to_owned(),
        user_id: Some(user.id.clone()),
        detail: Some("gatehouse user reset-link".into()),
        ..AuditEvent::default()
    };
    store.insert_audit_event(&event).await?;
    store.close().await;
    Ok(crate::mail::link(
        kind,
        &base,
        args.password_reset_url.as_deref(),
        &token,
    ))
}

/// `gatehouse keys rotate`: adds a new signing key to the database.
pub async fn rotate_keys(
    keys: &KeyArgs,
    database: &DatabaseArgs,
    activate_in: std::time::Duration,
) -> Result<Rotation, StartError> {
    let (store, ring) = key_admin(keys, database).await?;
    let rotation = ring
        .rotate(
            &store,
            &KeyArgs::legacy_key_path(&database.data_dir),
            activate_in,
        )
        .await;
    store.close().await;
    Ok(rotation?)
}

/// `gatehouse keys reset`: replaces every signing key with a new one.
pub async fn reset_keys(keys: &KeyArgs, database: &DatabaseArgs) -> Result<Rotation, StartError> {
    let (store, ring) = key_admin(keys, database).await?;
    let reset = async {
        let reset = ring.reset(&store).await?;
        Successors::reset(&store, &ring.kek, SystemClock.now()).await?;
        Ok::<_, RingError>(reset)
    }
    .await;
    store.close().await;
    Ok(reset?)
}

/// `gatehouse keys reseal`: re-seals the signing keys, the refresh-token
/// secret and the accounts' TOTP secrets under a new key-encryption key;
/// returns how many signing keys and how many TOTP secrets.
pub async fn reseal_keys(
    keys: &KeyArgs,
    database: &DatabaseArgs,
    new_kek_file: &std::path::Path,
) -> Result<(u64, u64), StartError> {
    let new_kek = crate::auth::keys::Kek::load(new_kek_file)?;
    if !keys.in_database() {
        let (store, kek) = secret_admin(keys, database).await?;
        let resealed = async {
            Successors::reseal(&store, &kek, &new_kek).await?;
            SecondFactor::reseal(&store, &kek, &new_kek)
                .await
                .map_err(StartError::Admin)
        }
        .await;
        store.close().await;
        return Ok((0, resealed?));
    }
    let (store, ring) = key_admin(keys, database).await?;
    let resealed = async {
        let resealed = ring.reseal(&store, &new_kek).await?;
        Successors::reseal(&store, &ring.kek, &new_kek).await?;
        Ok::<_, RingError>(resealed)
    }
    .await;
    let totp = match &resealed {
        Ok(_) => SecondFactor::reseal(&store, &ring.kek, &new_kek)
            .await
            .map_err(StartError::Admin),
        Err(_) => Ok(0),
    };
    store.close().await;
    Ok((resealed?, totp?))
}

/// `gatehouse keys reset` with a fixed signing key (which it does not
/// manage): a new refresh-token secret under the configured key-encryption
/// key, after the one that sealed the old secret was lost.
pub async fn reset_refresh_secret(
    keys: &KeyArgs,
    database: &DatabaseArgs,
) -> Result<(), StartError> {
    let (store, kek) = secret_admin(keys, database).await?;
    let reset = Successors::reset(&store, &kek, SystemClock.now()).await;
    store.close().await;
    Ok(reset?)
}

/// `gatehouse keys list`: the signing keys, oldest first.
pub async fn list_keys(
    keys: &KeyArgs,
    database: &DatabaseArgs,
) -> Result<Vec<SigningKeyRecord>, StartError> {
    let (store, ring) = key_admin(keys, database).await?;
    let records = store.signing_keys().await;
    store.close().await;
    let records = records?;
    if !records.is_empty() {
        ring.ring(&records)?;
    }
    Ok(records)
}

/// The store and the key-encryption key, for managing the refresh-token
/// secret in any configuration.
async fn secret_admin(
    keys: &KeyArgs,
    database: &DatabaseArgs,
) -> Result<(Store, crate::auth::keys::Kek), StartError> {
    keys.validate().map_err(StartError::Config)?;
    let kek = load_kek(keys, database)?;
    Ok((open_store(database).await?, kek))
}

/// The store and key ring for `gatehouse keys`; refused when the
/// configuration signs with a fixed key instead.
async fn key_admin(
    keys: &KeyArgs,
    database: &DatabaseArgs,
) -> Result<(Store, DatabaseKeys), StartError> {
    keys.validate().map_err(StartError::Config)?;
    if !keys.in_database() {
        return Err(StartError::Config(
            "this configuration signs with a fixed key (--signing-key-file or hs256), \
             which gatehouse keys does not manage: replace that file instead"
                .into(),
        ));
    }
    // The overlap only matters to a serving instance.
    let ring = database_keys(
        keys,
        database,
        std::time::Duration::ZERO,
        Arc::new(SystemClock),
    )?;
    Ok((open_store(database).await?, ring))
}

fn read_password() -> std::io::Result<SecretString> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ").map(SecretString::from);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(SecretString::from(password.to_owned()))
}
