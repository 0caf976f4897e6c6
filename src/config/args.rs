//! The settings admin commands share with the server: the database, the
//! password hashing and the signing keys.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `mysql://user:pass@host:port/db` or `sqlite://path`.
    /// Also read from DATABASE_URL. Default: sqlite://<data-dir>/gatehouse.db.
    #[arg(long, env = "GATEHOUSE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory for the default SQLite database and the generated signing key.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database connections in the pool.
    #[arg(long, env = "GATEHOUSE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before answering 503.
    #[arg(long, env = "GATEHOUSE_DB_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_timeout: Duration,
}

impl DatabaseArgs {
    /// The database URL: the flag, then DATABASE_URL, then SQLite in the data dir.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| {
                std::env::var("DATABASE_URL")
                    .ok()
                    .filter(|url| !url.is_empty())
            })
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("gatehouse.db").display()))
    }
}

/// Argon2id cost settings. Production defaults are OWASP's; lower them only
/// for tests.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// Argon2id memory cost in KiB.
    #[arg(long, env = "GATEHOUSE_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    #[arg(long, env = "GATEHOUSE_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// Argon2id parallelism (lanes).
    #[arg(long, env = "GATEHOUSE_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Threads that hash passwords, at a lower scheduling priority than
    /// request handling. Default: one per core.
    #[arg(long, env = "GATEHOUSE_ARGON2_WORKERS", value_parser = clap::value_parser!(usize))]
    pub argon2_workers: Option<usize>,
    /// Password hashes that may wait for a free core; more are refused with
    /// 503 and Retry-After instead of piling up (each hash holds its memory).
    #[arg(long, env = "GATEHOUSE_ARGON2_QUEUE", default_value_t = 64)]
    pub argon2_queue: usize,
    /// How long a password hash beyond the queue waits for a place before
    /// it is refused with 503: a login flood is slowed to the hashing rate
    /// instead of being refused as fast as it comes.
    #[arg(long, env = "GATEHOUSE_ARGON2_WAIT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub argon2_wait: Duration,
    /// Minimum password length, in characters.
    #[arg(long, env = "GATEHOUSE_MIN_PASSWORD_LENGTH", default_value_t = 8)]
    pub min_password_length: usize,
}

impl PasswordArgs {
    pub fn argon2(&self) -> crate::auth::password::Argon2Params {
        crate::auth::password::Argon2Params {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }
}

/// How access tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JwtAlgorithm {
    /// Ed25519 signatures; anyone can verify with the public key.
    Eddsa,
    /// HMAC-SHA256 with a shared secret; only holders of the secret can verify.
    Hs256,
}

/// Where the signing keys come from.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Access-token signature: `eddsa` (Ed25519) or `hs256` (a shared secret).
    #[arg(
        long,
        env = "GATEHOUSE_JWT_ALGORITHM",
        value_enum,
        default_value = "eddsa"
    )]
    pub jwt_algorithm: JwtAlgorithm,
    /// A fixed PKCS#8 PEM Ed25519 signing key, managed by you (no
    /// `gatehouse keys rotate`). Default: keys are generated into the
    /// database, sealed with the key-encryption key.
    #[arg(long, env = "GATEHOUSE_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// With --jwt-algorithm hs256: a file holding the shared secret, at least
    /// 32 random bytes (e.g. `openssl rand -base64 48 > secret`).
    #[arg(long, env = "GATEHOUSE_HS256_SECRET_FILE")]
    pub hs256_secret_file: Option<PathBuf>,
    /// The key that seals the secrets stored in the database (the signing
    /// keys and the refresh-token secret): 32 random bytes, base64 (`openssl
    /// rand -base64 32`). Every instance sharing a database needs the same
    /// one; keep it apart from database backups. Default: generated once
    /// into <data-dir>.
    #[arg(long, env = "GATEHOUSE_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// Whether the signing keys live in the database (the default), as
    /// opposed to one fixed key from a file or an HS256 secret.
    pub fn in_database(&self) -> bool {
        self.jwt_algorithm == JwtAlgorithm::Eddsa && self.signing_key_file.is_none()
    }

    /// The key-encryption key file: the flag, or `<data-dir>/key-encryption-key`.
    pub fn key_encryption_key_path(&self, data_dir: &std::path::Path) -> PathBuf {
        self.key_encryption_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("key-encryption-key"))
    }

    /// The signing key file of earlier versions, `<data-dir>/signing-key.pem`:
    /// imported into the database once, so its tokens stay valid.
    pub fn legacy_key_path(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("signing-key.pem")
    }

    /// Checks that the flags name one way of signing.
    pub fn validate(&self) -> Result<(), String> {
        match (self.jwt_algorithm, &self.hs256_secret_file) {
            (JwtAlgorithm::Hs256, None) => {
                return Err("--jwt-algorithm hs256 needs --hs256-secret-file".into());
            }
            (JwtAlgorithm::Eddsa, Some(_)) => {
                return Err("--hs256-secret-file needs --jwt-algorithm hs256".into());
            }
            _ => {}
        }
        if self.jwt_algorithm == JwtAlgorithm::Hs256 && self.signing_key_file.is_some() {
            return Err(
                "--signing-key-file is an Ed25519 key; hs256 uses --hs256-secret-file".into(),
            );
        }
        Ok(())
    }
}
