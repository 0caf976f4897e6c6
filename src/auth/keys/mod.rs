//! Signing-key rotation: the key ring, and its home in the database.
//!
//! By default the Ed25519 signing keys live in the `signing_keys` table, so
//! every instance sharing a database signs and verifies with the same keys.
//! Private keys are sealed at rest (XChaCha20-Poly1305) with a
//! key-encryption key (KEK) that never enters the database: a file given by
//! configuration, or one generated once into the data directory.
//!
//! Each key has a generation and an activation time. An instance signs with
//! the newest active key; it verifies with every key until the key after it
//! has been active for longer than an access token lives (plus the clock
//! leeway and one reload interval, the longest another instance may still
//! sign with it). The JWKS publishes exactly the keys that verify, including
//! one whose activation is still ahead.

mod database;
mod kek;
mod key;
mod ring;

pub use database::DatabaseKeys;
pub use kek::Kek;
pub use key::{KeyError, MIN_HMAC_SECRET_BYTES, TokenKey, read_ed25519_pem};
pub use ring::{KeyRing, RingKey};

/// Why the key ring could not be loaded, stored or rotated.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "the signing keys in the database are sealed with key-encryption key {stored}, \
         but the configured key-encryption key is {configured}: every instance sharing a \
         database needs the same --key-encryption-key-file (if that key is lost, \
         `gatehouse keys reset` replaces the signing keys)"
    )]
    WrongKek { stored: String, configured: String },
    #[error(
        "the signing key {kid} in the database cannot be unsealed: it was altered, \
         or sealed with another key-encryption key"
    )]
    Unsealable { kid: String },
    #[error(
        "the signing key {kid} in the database uses {algorithm:?}, which this version cannot use"
    )]
    UnknownAlgorithm { kid: String, algorithm: String },
    #[error(
        "the database holds no signing key yet: start gatehouse once, \
         or run gatehouse keys rotate"
    )]
    Empty,
    #[error(
        "the server secret {name} in the database is sealed with key-encryption key \
         {stored}, but the configured key-encryption key is {configured}: every instance \
         sharing a database needs the same --key-encryption-key-file (if that key is lost, \
         `gatehouse keys reset` replaces the secret)"
    )]
    SecretWrongKek {
        name: String,
        stored: String,
        configured: String,
    },
    #[error(
        "the server secret {name} in the database cannot be unsealed: it was altered, \
         or sealed with another key-encryption key"
    )]
    SecretUnsealable { name: String },
    #[error("another rotation kept winning the race; run it again")]
    Contended,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What `gatehouse keys rotate` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new key.
    pub kid: String,
    /// The key it replaces.
    pub previous: Option<String>,
    /// When instances start signing with it.
    pub activates_at: crate::clock::UnixMillis,
    /// How many keys a reset discarded.
    pub discarded: u64,
}

/// Where an instance's signing keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// One key fixed by configuration (a key file or an HS256 secret).
    Fixed,
    /// The ring in the database.
    Database(DatabaseKeys),
}
