//! Every setting, as command-line flags with environment twins
//! (`GATEHOUSE_` + the flag in upper snake case). A `.env` file is read first.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod args;
mod serve;

pub use args::{DatabaseArgs, JwtAlgorithm, KeyArgs, PasswordArgs};
pub use serve::{Config, known_scopes};

/// Gatehouse: password login, short-lived JWT access tokens and rotating
/// refresh tokens, described by an OpenAPI spec.
#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How log lines are written: `text` (one line of text each) or `json`
    /// (one JSON object each, for a log collector).
    #[arg(
        long,
        env = "GATEHOUSE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Settings for serving when no subcommand is given.
    #[command(flatten)]
    pub serve: Config,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup; its size does not matter
pub enum Command {
    /// Migrate the database and serve the API (the default).
    Serve(Config),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the keys access tokens are signed with.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI spec (JSON) that the server serves at /openapi.json.
    Openapi,
}

/// User administration.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input, never from argv.
    Create {
        /// The new user's email address.
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        user: UserArgs,
    },
    /// Disable a user: no more logins, and every session is revoked at once.
    Disable(UserArgs),
    /// Remove a user's second factor, for someone who lost both their phone
    /// and their recovery codes (confirm who they are first). Audited as
    /// `mfa_reset`; the password alone signs in until they enrol again.
    MfaReset {
        /// The user's name.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Enable a disabled user again (revoked sessions stay revoked).
    Enable(UserArgs),
    /// Print a password reset link for the user, for installs without mail:
    /// hand it to its owner over a channel you trust. It works once, within
    /// --password-reset-ttl.
    ResetLink {
        /// The user's name.
        #[arg(long)]
        username: String,
        /// The base URL of Gatehouse's pages. Default: the issuer (--issuer,
        /// or the one the first serving instance stored).
        #[arg(long, env = "GATEHOUSE_PUBLIC_URL")]
        public_url: Option<String>,
        /// The link template of an app with its own page, with `{token}`.
        #[arg(long, env = "GATEHOUSE_PASSWORD_RESET_URL")]
        password_reset_url: Option<String>,
        /// How long the link works.
        #[arg(long, env = "GATEHOUSE_PASSWORD_RESET_TTL", default_value = "30m", value_parser = humantime::parse_duration)]
        password_reset_ttl: Duration,
        /// The issuer, when no --public-url is given.
        #[arg(long, env = "GATEHOUSE_ISSUER")]
        issuer: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// What every `gatehouse client` command needs: the database, and the
/// registry's settings as the server has them.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The built-in client's id, which no registered client may take.
    #[arg(long, env = "GATEHOUSE_DEFAULT_CLIENT_ID", default_value = "gatehouse")]
    pub default_client_id: String,
    /// The resource scopes the server grants besides `profile` (as its
    /// `--scopes`): a client may be created with these.
    #[arg(long, env = "GATEHOUSE_SCOPES", value_delimiter = ',', num_args = 0..)]
    pub scopes: Vec<String>,
}

/// OAuth client administration. Each command prints JSON on standard output.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its `client_id` and, for a confidential
    /// client, its `client_secret` (shown once, stored only as a hash).
    Create {
        /// A name for people (shown on consent pages).
        #[arg(long)]
        name: String,
        /// The id to register; generated when absent.
        #[arg(long)]
        client_id: Option<String>,
        /// A confidential client (it gets a secret): servers, not browsers
        /// or apps.
        #[arg(long)]
        confidential: bool,
        /// A client of the service itself: no consent is asked.
        #[arg(long)]
        first_party: bool,
        /// A grant type it may use (repeat): password, refresh_token,
        /// authorization_code, client_credentials. Default: client_credentials
        /// for a confidential client, authorization_code and refresh_token
        /// otherwise.
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// A redirect URI, exactly as requests will send it (repeat).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A scope it may be granted (repeat): `profile`, or one of --scopes.
        #[arg(long = "scope", id = "scope")]
        client_scopes: Vec<String>,
        #[command(flatten)]
        args: ClientArgs,
    },
    /// List the registered clients (never their secrets).
    List(ClientArgs),
    /// Disable a client: it authenticates no more (its tokens then fail
    /// introspection).
    Disable {
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        args: ClientArgs,
    },
    /// Give a confidential client a new secret (printed once); the old one
    /// stops working at once.
    RotateSecret {
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        args: ClientArgs,
    },
}

/// Signing-key administration.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key with a new `kid`. Instances sign with it from
    /// its activation (after their next reload); tokens signed by the
    /// previous key keep verifying until they expire, then it leaves the JWKS.
    Rotate {
        /// Publish the new key in the JWKS this long before signing with it,
        /// so verifiers that cache the JWKS know it in time (e.g. 5m, the
        /// JWKS max-age). Default: sign with it at once.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        activate_in: Duration,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Replace every signing key and the refresh-token secret with new ones
    /// at once: after a key leaked, or the key-encryption key was lost.
    /// Access tokens issued so far stop verifying (within
    /// --key-reload-interval everywhere); sessions and refresh tokens are
    /// unaffected. With a fixed signing key, only the refresh-token secret
    /// is replaced.
    Reset {
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Re-seal every signing key and the refresh-token secret under a new
    /// key-encryption key (they stay the same); then restart every instance
    /// with it. With a fixed signing key, only the refresh-token secret.
    Reseal {
        /// The new key-encryption key: 32 random bytes, base64
        /// (`openssl rand -base64 32`).
        #[arg(long)]
        new_key_encryption_key_file: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the signing keys in the database, oldest first.
    List {
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Which user, in which database, with which password hashing.
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// The user's name.
    #[arg(long)]
    pub username: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub passwords: PasswordArgs,
}

#[cfg(test)]
mod command_line_tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_command_s_flags_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
