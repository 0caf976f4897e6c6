//! The server's settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser as _};

use super::{Cli, DatabaseArgs, KeyArgs, PasswordArgs};

/// Settings of the server.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Serve `/metrics` on this address instead of on --listen: use it when
    /// the API listener is reachable by the public (behind a load balancer,
    /// say) and your monitoring reaches a private address. Unset, the API
    /// listener serves `/metrics` too.
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The `iss` of issued tokens. Default: http://<listen> of the first
    /// instance started on the database (every instance of it shares it).
    #[arg(long, env = "GATEHOUSE_ISSUER")]
    pub issuer: Option<String>,
    /// The `aud` of issued tokens.
    #[arg(long, env = "GATEHOUSE_AUDIENCE", default_value = "gatehouse")]
    pub audience: String,
    /// The `client_id` of a login that names no client (public clients may
    /// omit it, RFC 6749 §3.2.1): recorded on the session and carried by its
    /// access tokens, which RFC 9068 §2.2 requires to name one.
    #[arg(long, env = "GATEHOUSE_DEFAULT_CLIENT_ID", default_value = "gatehouse")]
    pub default_client_id: String,
    /// Resource scopes Gatehouse grants besides `profile` (space- or
    /// comma-separated), e.g. `invoices:read invoices:write`. A client is
    /// granted only the scopes it was created with.
    #[arg(long, env = "GATEHOUSE_SCOPES", value_delimiter = ',', num_args = 0..)]
    pub scopes: Vec<String>,
    /// Lifetime of an access token.
    #[arg(long, env = "GATEHOUSE_ACCESS_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_ttl: Duration,
    /// Absolute lifetime of a session's refresh tokens, from login.
    #[arg(long, env = "GATEHOUSE_REFRESH_TTL", default_value = "14d", value_parser = humantime::parse_duration)]
    pub refresh_ttl: Duration,
    /// A refresh token unused for this long expires (off when unset).
    #[arg(long, env = "GATEHOUSE_REFRESH_IDLE_TTL", value_parser = humantime::parse_duration)]
    pub refresh_idle_ttl: Option<Duration>,
    /// How long a rotated refresh token may be presented again and get the same
    /// successor; 0s makes any second use a reuse that revokes the session.
    #[arg(long, env = "GATEHOUSE_REFRESH_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub refresh_grace: Duration,
    /// How long after its rotation a refresh token whose successor has never
    /// been used still gets that successor, so that a client that never
    /// received it (lost response, outage, crash) stays signed in; once the
    /// successor is used, the old token is reuse. Not with --refresh-grace 0s.
    #[arg(long, env = "GATEHOUSE_REFRESH_REPLAY_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub refresh_replay_window: Duration,
    /// How long a session check is trusted: access tokens of a session
    /// revoked through another instance stop working within this; 0s checks
    /// the database on every request.
    #[arg(long, env = "GATEHOUSE_SESSION_CHECK_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub session_check_ttl: Duration,
    /// Sessions whose check is cached at most (about 300 bytes each, with
    /// the account read with it); past it the least used are evicted.
    #[arg(
        long,
        env = "GATEHOUSE_SESSION_CACHE_ENTRIES",
        default_value_t = 250_000
    )]
    pub session_cache_entries: usize,
    /// Clock skew tolerated on access-token `exp` and `nbf`.
    #[arg(long, env = "GATEHOUSE_JWT_LEEWAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// How often the signing keys are re-read from the database, so a
    /// `gatehouse keys rotate` reaches every instance (a token with an
    /// unknown `kid` also triggers a re-read, at most once a second).
    #[arg(long, env = "GATEHOUSE_KEY_RELOAD_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub key_reload_interval: Duration,
    #[command(flatten)]
    pub passwords: PasswordArgs,
    /// Failed logins an account may have from one client address before
    /// each further one blocks it there for a doubling time (1s, 2s, 4s…).
    /// Other addresses are not blocked by them: one address cannot lock the
    /// owner out.
    #[arg(long, env = "GATEHOUSE_LOGIN_FREE_FAILURES", default_value_t = 5)]
    pub login_free_failures: u32,
    /// Failed logins an account may have from all addresses together (each
    /// adding at most --login-free-failures) before each further one blocks
    /// it everywhere for a doubling time: guessing spread over many
    /// addresses is slowed too.
    #[arg(
        long,
        env = "GATEHOUSE_LOGIN_SPREAD_FREE_FAILURES",
        default_value_t = 50
    )]
    pub login_spread_free_failures: u32,
    /// The longest an account is blocked after failed logins.
    #[arg(long, env = "GATEHOUSE_LOGIN_BACKOFF_CAP", default_value = "15m", value_parser = humantime::parse_duration)]
    pub login_backoff_cap: Duration,
    /// Failed logins from one client address, within --address-failure-window,
    /// that block the address until the window ends.
    #[arg(long, env = "GATEHOUSE_ADDRESS_MAX_FAILURES", default_value_t = 100)]
    pub address_max_failures: u32,
    /// The window of --address-max-failures.
    #[arg(long, env = "GATEHOUSE_ADDRESS_FAILURE_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub address_failure_window: Duration,
    /// Proxies (comma-separated addresses or CIDRs) whose X-Forwarded-For is
    /// believed: the client address is then its right-most untrusted entry.
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::api::Cidr::parse)]
    pub trusted_proxies: Vec<crate::api::Cidr>,
    /// How often expired and long-revoked sessions and stale throttle
    /// counters are deleted.
    #[arg(long, env = "GATEHOUSE_PRUNE_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub prune_interval: Duration,
    /// How long audit events are kept before deletion (they are pruned with
    /// sessions, every --prune-interval).
    #[arg(long, env = "GATEHOUSE_AUDIT_RETENTION", default_value = "90d", value_parser = humantime::parse_duration)]
    pub audit_retention: Duration,
    /// How long a revoked session is kept (and listed nowhere) before deletion.
    #[arg(long, env = "GATEHOUSE_REVOKED_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub revoked_retention: Duration,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "GATEHOUSE_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Largest request header section (names and values), in bytes; larger
    /// gets 431.
    #[arg(long, env = "GATEHOUSE_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// A client must send each request's headers within this, also on a
    /// kept-alive connection between requests: slow-header (slowloris) and
    /// idle connections are closed.
    #[arg(long, env = "GATEHOUSE_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no request in flight for this long is
    /// closed (HTTP/1's idle limit is `--header-read-timeout`).
    #[arg(long, env = "GATEHOUSE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are
    /// accepted. Default: the open-file limit (raised to its hard limit at
    /// start) less 128 kept for the database and files.
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// A request still running after this is answered 503.
    #[arg(long, env = "GATEHOUSE_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Origins (comma-separated, e.g. `https://app.example.com`) allowed to
    /// call the API from a browser; none by default (CORS off).
    #[arg(long, env = "GATEHOUSE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// The base URL of links in mails and of Gatehouse's own pages
    /// (`/account/…`). Default: the issuer.
    #[arg(long, env = "GATEHOUSE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The SMTP server: `smtp://[user:pass@]host[:port]` (add `?tls=required`
    /// for STARTTLS, port 587 by default) or `smtps://…` (implicit TLS, port
    /// 465). Certificates are checked. Unset (and no --mail-dir): mails wait
    /// in the database until one is configured.
    #[arg(long, env = "GATEHOUSE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// PEM certificates to trust for the SMTP server besides the system's
    /// (a private certificate authority).
    #[arg(long, env = "GATEHOUSE_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// The deadline of each SMTP step (connecting, each command); one mail
    /// gets three of them in all.
    #[arg(long, env = "GATEHOUSE_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub smtp_timeout: Duration,
    /// The sender of mails, e.g. `Example <no-reply@example.org>`. Needed
    /// with --smtp-url; default with --mail-dir: `Gatehouse <no-reply@localhost>`.
    #[arg(long, env = "GATEHOUSE_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Development: write each mail as an `.eml` file into this directory
    /// instead of sending it.
    #[arg(long, env = "GATEHOUSE_MAIL_DIR")]
    pub mail_dir: Option<std::path::PathBuf>,
    /// The product name mails and pages use.
    #[arg(long, env = "GATEHOUSE_PRODUCT_NAME", default_value = "Gatehouse")]
    pub product_name: String,
    /// The link of password reset mails, for apps with their own page:
    /// `{token}` is replaced by the token. Default: Gatehouse's page,
    /// <public-url>/account/reset-password?token={token}.
    #[arg(long, env = "GATEHOUSE_PASSWORD_RESET_URL")]
    pub password_reset_url: Option<String>,
    /// The link of verification and email-change mails, with `{token}`.
    /// Default: <public-url>/account/verify-email?token={token}.
    #[arg(long, env = "GATEHOUSE_EMAIL_VERIFY_URL")]
    pub email_verify_url: Option<String>,
    /// How long a password reset link works.
    #[arg(long, env = "GATEHOUSE_PASSWORD_RESET_TTL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub password_reset_ttl: Duration,
    /// How long a verification or email-change link works.
    #[arg(long, env = "GATEHOUSE_EMAIL_VERIFY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub email_verify_ttl: Duration,
    /// Mails one account may be sent per hour; further requests are
    /// answered alike but not mailed.
    #[arg(long, env = "GATEHOUSE_MAIL_PER_ACCOUNT_HOURLY", default_value_t = 5)]
    pub mail_per_account_hourly: u32,
    /// How often the outbox is read for other instances' mails and retries
    /// (mails queued through this instance go at once).
    #[arg(long, env = "GATEHOUSE_MAIL_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub mail_poll_interval: Duration,
    /// How long the audit events of client-credentials grants gather
    /// before one statement writes them all (at most 200; they are written
    /// at shutdown too). Longer means fewer writes under load.
    #[arg(long, env = "GATEHOUSE_AUDIT_BATCH_WINDOW", default_value = "20ms", value_parser = humantime::parse_duration)]
    pub audit_batch_window: Duration,
    /// How long shutdown waits for in-flight requests.
    #[arg(long, env = "GATEHOUSE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

impl Config {
    /// The configuration with every default, as `gatehouse` with no flags
    /// and no environment would have it.
    pub fn defaults() -> Self {
        Cli::parse_from(["gatehouse"]).serve
    }

    /// The issuer: the flag, or `http://<listen>` (which the first instance
    /// on a database stores for the others).
    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Every scope Gatehouse grants: `profile`, then `--scopes` in order.
    pub fn known_scopes(&self) -> Result<Vec<String>, String> {
        known_scopes(&self.scopes)
    }

    /// The base URL of links and pages: the flag, or the issuer.
    pub fn public_url(&self, issuer: &str) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| issuer.to_owned())
            .trim_end_matches('/')
            .to_owned()
    }

    /// Checks settings that clap cannot check one by one.
    pub fn validate(&self) -> Result<(), String> {
        if self.access_ttl < Duration::from_secs(1) {
            return Err("--access-ttl must be at least 1s".into());
        }
        if self.refresh_ttl <= self.access_ttl {
            return Err("--refresh-ttl must be longer than --access-ttl".into());
        }
        if self.refresh_grace >= self.refresh_ttl {
            return Err("--refresh-grace must be shorter than --refresh-ttl".into());
        }
        if self.prune_interval.is_zero() {
            return Err("--prune-interval must be positive".into());
        }
        if self.login_free_failures == 0
            || self.login_spread_free_failures == 0
            || self.address_max_failures == 0
        {
            return Err(
                "--login-free-failures, --login-spread-free-failures and --address-max-failures \
                 must be at least 1"
                    .into(),
            );
        }
        if self.passwords.argon2_workers == Some(0) {
            return Err("--argon2-workers must be at least 1".into());
        }
        if self.passwords.min_password_length == 0 {
            return Err("--min-password-length must be at least 1".into());
        }
        self.keys.validate()?;
        if self.key_reload_interval < Duration::from_secs(1) {
            return Err("--key-reload-interval must be at least 1s".into());
        }
        if self.idle_timeout.is_zero() {
            return Err("--idle-timeout must be more than 0s".into());
        }
        if self.max_connections == Some(0) {
            return Err("--max-connections must be at least 1".into());
        }
        if self.header_read_timeout.is_zero() {
            return Err("--header-read-timeout must be positive".into());
        }
        if self.smtp_url.is_some() && self.mail_dir.is_some() {
            return Err("--smtp-url and --mail-dir exclude each other".into());
        }
        if self.smtp_url.is_some() && self.mail_from.is_none() {
            return Err("--smtp-url needs --mail-from (the sender's address)".into());
        }
        for (flag, template) in [
            ("--password-reset-url", &self.password_reset_url),
            ("--email-verify-url", &self.email_verify_url),
        ] {
            if let Some(template) = template
                && !(template.contains("{token}")
                    && (template.starts_with("https://") || template.starts_with("http://")))
            {
                return Err(format!(
                    "{flag} must be an http(s) URL holding {{token}}, e.g. \
                     https://app.example.org/reset?token={{token}}"
                ));
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err("--public-url must be an http(s) URL".into());
        }
        if self.password_reset_ttl < Duration::from_secs(60)
            || self.email_verify_ttl < Duration::from_secs(60)
        {
            return Err("--password-reset-ttl and --email-verify-ttl must be at least 1m".into());
        }
        if self.mail_poll_interval.is_zero() || self.smtp_timeout.is_zero() {
            return Err("--mail-poll-interval and --smtp-timeout must be positive".into());
        }
        self.known_scopes()?;
        if self.audience.is_empty() {
            return Err("--audience must not be empty".into());
        }
        if self.default_client_id.is_empty()
            || !crate::auth::client::valid_client_id(&self.default_client_id)
        {
            return Err("--default-client-id must be 1 to 255 printable characters".into());
        }
        Ok(())
    }
}

/// `profile` and the resource scopes `flags` name (each flag value may hold
/// several, space-separated); why not, if one cannot be a scope (RFC 6749
/// §3.3: printable ASCII but space, `"` and `\\`).
pub fn known_scopes(flags: &[String]) -> Result<Vec<String>, String> {
    let mut scopes = vec![crate::auth::scope::PROFILE.to_owned()];
    for scope in flags.iter().flat_map(|flag| flag.split_whitespace()) {
        let valid = scope.len() <= 64
            && scope
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        if !valid {
            return Err(format!(
                "--scopes: {scope:?} is not a scope (at most 64 printable ASCII characters, \
                 without spaces, quotes or backslashes)"
            ));
        }
        if !scopes.iter().any(|known| known == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}
