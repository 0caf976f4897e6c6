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

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac as _};
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret as _, SecretBox};
use sha2::Sha256;

use super::jwt::{KeyError, TokenKey, read_ed25519_pem};
use super::service::AuthService;
use crate::store::{AuditEvent, SigningKeyRecord, Store};

/// The `algorithm` column of Ed25519 keys.
const EDDSA: &str = "EdDSA";
/// The additional data that binds a sealed key to its row.
const SEAL_LABEL: &[u8] = b"gatehouse signing key v1\0";
/// The least time between two reloads triggered by unknown `kid`s, so a
/// flood of forged tokens costs at most one query a second.
const UNKNOWN_KID_RELOAD_MILLIS: i64 = 1_000;

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
    #[error("another rotation kept winning the race; run it again")]
    Contended,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// One key of the ring, with its lifetime (Unix milliseconds).
#[derive(Debug, Clone)]
pub struct RingKey {
    pub key: Arc<TokenKey>,
    /// From when new tokens are signed with it.
    pub activates_at: i64,
    /// From when tokens signed with it no longer verify; `None` while no
    /// newer key is active.
    pub retires_at: Option<i64>,
}

/// The keys an instance signs and verifies with.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// Oldest first; never empty; all of one algorithm.
    keys: Vec<RingKey>,
}

impl From<TokenKey> for KeyRing {
    /// One fixed key: active forever.
    fn from(key: TokenKey) -> Self {
        Self {
            keys: vec![RingKey {
                key: Arc::new(key),
                activates_at: i64::MIN,
                retires_at: None,
            }],
        }
    }
}

impl KeyRing {
    /// A ring of `(key, activates_at)`, oldest first, where a key retires
    /// `overlap` after the next one activates. `None` when `keys` is empty.
    pub fn new(keys: Vec<(TokenKey, i64)>, overlap: Duration) -> Option<Self> {
        let overlap = super::refresh::millis(overlap);
        let next_activations: Vec<Option<i64>> = keys
            .iter()
            .skip(1)
            .map(|(_, activates_at)| Some(*activates_at))
            .chain([None])
            .collect();
        let keys: Vec<RingKey> = keys
            .into_iter()
            .zip(next_activations)
            .map(|((key, activates_at), next)| RingKey {
                key: Arc::new(key),
                activates_at,
                retires_at: next.map(|next| next.saturating_add(overlap)),
            })
            .collect();
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// The signature algorithm of every key in the ring.
    pub fn algorithm(&self) -> Algorithm {
        self.keys[0].key.algorithm()
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    /// The key to sign with at `now`: the newest active one.
    pub fn signing(&self, now: i64) -> &Arc<TokenKey> {
        let active = self.keys.iter().rev().find(|key| key.activates_at <= now);
        &active.unwrap_or(&self.keys[0]).key
    }

    /// The key `kid`, if tokens signed with it verify at `now`.
    pub fn verifying(&self, kid: &str, now: i64) -> Option<&Arc<TokenKey>> {
        self.published(now).find(|key| key.kid() == kid)
    }

    /// The keys whose tokens verify at `now` (the JWKS), oldest first:
    /// earlier keys until they retire, the current one, and any next one.
    pub fn published(&self, now: i64) -> impl Iterator<Item = &Arc<TokenKey>> {
        self.keys
            .iter()
            .filter(move |key| key.retires_at.is_none_or(|retires_at| now < retires_at))
            .map(|key| &key.key)
    }
}

/// The key-encryption key: seals the private signing keys kept in the database.
pub struct Kek {
    key: SecretBox<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&bytes)
            .expect("HMAC takes keys of any length");
        mac.update(b"gatehouse key-encryption key id");
        let id = URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..9]);
        Self {
            key: SecretBox::new(Box::new(bytes)),
            id,
        }
    }

    /// Reads the KEK in `path`: 32 bytes, base64 (standard or URL-safe).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| KeyError::BadKek {
                path: path.to_owned(),
            })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Reads the KEK in `path`, or creates it (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        if path.exists() {
            return Self::load(path);
        }
        let contents = format!("{}\n", STANDARD.encode(super::random_bytes::<32>()));
        create_private_file(path, contents.as_bytes())?;
        Self::load(path)
    }

    /// Identifies the KEK without revealing it (stored beside what it sealed).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.key.expose_secret()).into())
    }

    /// Encrypts `secret`, bound to `kid`: base64url(nonce ‖ ciphertext ‖ tag).
    fn seal(&self, kid: &str, secret: &[u8]) -> String {
        let nonce = super::random_bytes::<24>();
        let aad = [SEAL_LABEL, kid.as_bytes()].concat();
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message this short");
        URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat())
    }

    /// Decrypts what [`Kek::seal`] sealed for `kid`; `None` if it was altered,
    /// moved to another `kid`, or sealed with another KEK.
    fn open(&self, kid: &str, sealed: &str) -> Option<SecretBox<[u8; 32]>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let aad = [SEAL_LABEL, kid.as_bytes()].concat();
        let nonce = XNonce::try_from(nonce).ok()?;
        let plain = self
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?;
        let seed = <[u8; 32]>::try_from(plain.as_slice()).ok()?;
        Some(SecretBox::new(Box::new(seed)))
    }
}

/// Writes a new file readable by its owner only (0600), complete or not at
/// all: written aside, then hard-linked into place. When another process
/// wins the race, its file is kept.
pub fn create_private_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let write_err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::store::create_private_dir(dir).map_err(write_err)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let written =
        write_new_private_file(&tmp, contents).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(write_err(err)),
    }
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The signing keys kept in the database, and how to read them.
#[derive(Debug)]
pub struct DatabaseKeys {
    pub kek: Kek,
    /// How long a key still verifies after the next one activates.
    pub overlap: Duration,
    /// When the ring was last read (Unix ms), to rate-limit reloads.
    last_reload: AtomicI64,
}

impl DatabaseKeys {
    pub fn new(kek: Kek, overlap: Duration) -> Self {
        Self {
            kek,
            overlap,
            last_reload: AtomicI64::new(0),
        }
    }

    /// Reads the ring, creating its first key if the database has none:
    /// the key in `legacy_file` if that exists (a data directory from before
    /// keys moved into the database), or a new one.
    pub async fn load(
        &self,
        store: &Store,
        legacy_file: Option<&Path>,
    ) -> Result<KeyRing, RingError> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            let key = match legacy_file.filter(|path| path.exists()) {
                Some(path) => {
                    let key = read_ed25519_pem(path)?;
                    tracing::info!(
                        path = %path.display(),
                        "imported the signing key file into the database; it is no longer read"
                    );
                    key
                }
                None => SigningKey::from_bytes(&super::random_bytes::<32>()),
            };
            let now = super::now_millis();
            // Instances starting together race here; the unique generation
            // decides, and the losers read the winner's key.
            self.insert(store, &key, 1, now, now).await?;
            records = store.signing_keys().await?;
        }
        self.ring(&records)
    }

    /// Unseals `records` into a ring.
    pub fn ring(&self, records: &[SigningKeyRecord]) -> Result<KeyRing, RingError> {
        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            if record.kek_id != self.kek.id() {
                return Err(RingError::WrongKek {
                    stored: record.kek_id.clone(),
                    configured: self.kek.id().to_owned(),
                });
            }
            if record.algorithm != EDDSA {
                return Err(RingError::UnknownAlgorithm {
                    kid: record.kid.clone(),
                    algorithm: record.algorithm.clone(),
                });
            }
            let unsealable = || RingError::Unsealable {
                kid: record.kid.clone(),
            };
            let seed = self
                .kek
                .open(&record.kid, &record.private_key)
                .ok_or_else(unsealable)?;
            let key = TokenKey::new(&SigningKey::from_bytes(seed.expose_secret()));
            if key.kid() != record.kid {
                return Err(unsealable());
            }
            keys.push((key, record.activates_at));
        }
        KeyRing::new(keys, self.overlap).ok_or(RingError::Empty)
    }

    async fn insert(
        &self,
        store: &Store,
        key: &SigningKey,
        generation: i64,
        created_at: i64,
        activates_at: i64,
    ) -> Result<Option<String>, RingError> {
        let kid = TokenKey::new(key).kid().to_owned();
        let record = SigningKeyRecord {
            generation,
            private_key: self.kek.seal(&kid, key.as_bytes()),
            kid,
            algorithm: EDDSA.to_owned(),
            kek_id: self.kek.id().to_owned(),
            created_at,
            activates_at,
        };
        Ok(store
            .insert_signing_key(&record)
            .await?
            .then_some(record.kid))
    }

    /// Adds a new key that instances sign with from `activate_in` from now.
    /// Concurrent rotations each add a key (the unique generation orders
    /// them); nothing is lost. Records a `key_rotated` audit event.
    pub async fn rotate(
        &self,
        store: &Store,
        legacy_file: Option<&Path>,
        activate_in: Duration,
    ) -> Result<Rotation, RingError> {
        self.load(store, legacy_file).await?;
        for _ in 0..8 {
            let records = store.signing_keys().await?;
            self.ring(&records)?;
            let last = records.last();
            let now = super::now_millis();
            // Activations never go back in time, so the newest key is
            // always the last to activate.
            let activates_at = (now + super::refresh::millis(activate_in))
                .max(last.map_or(now, |last| last.activates_at));
            let generation = last.map_or(1, |last| last.generation + 1);
            let key = SigningKey::from_bytes(&super::random_bytes::<32>());
            let Some(kid) = self
                .insert(store, &key, generation, now, activates_at)
                .await?
            else {
                continue;
            };
            let previous = last.map(|last| last.kid.clone());
            let detail = format!(
                "kid={kid} previous={} activates_at={activates_at}",
                previous.as_deref().unwrap_or("-")
            );
            tracing::info!(%kid, ?previous, activates_at, "signing key rotated");
            audit_key_event(store, "key_rotated", detail, now).await?;
            return Ok(Rotation {
                kid,
                previous,
                activates_at,
                discarded: 0,
            });
        }
        Err(RingError::Contended)
    }

    /// Replaces every key with a new one, at once: for a signing key that
    /// leaked, or keys sealed with a key-encryption key that was lost. Every
    /// access token issued so far stops verifying as soon as instances
    /// reload; sessions and refresh tokens are unaffected, so clients
    /// recover by refreshing. The old keys need not be readable.
    pub async fn reset(&self, store: &Store) -> Result<Rotation, RingError> {
        for _ in 0..8 {
            let records = store.signing_keys().await?;
            let generation = records.last().map_or(1, |last| last.generation + 1);
            let now = super::now_millis();
            let key = SigningKey::from_bytes(&super::random_bytes::<32>());
            let Some(kid) = self.insert(store, &key, generation, now, now).await? else {
                continue;
            };
            let discarded = store.delete_signing_keys_before(generation).await?;
            tracing::warn!(%kid, discarded, "signing keys reset");
            let detail = format!("kid={kid} discarded={discarded}");
            audit_key_event(store, "keys_reset", detail, now).await?;
            return Ok(Rotation {
                kid,
                previous: None,
                activates_at: now,
                discarded,
            });
        }
        Err(RingError::Contended)
    }
}

impl DatabaseKeys {
    /// Re-seals every key under `new_kek`, at once, so the key-encryption
    /// key can be replaced without touching the signing keys. Instances must
    /// then be restarted with the new key-encryption key; until then they
    /// keep the keys they hold but cannot load new ones.
    pub async fn reseal(&self, store: &Store, new_kek: &Kek) -> Result<u64, RingError> {
        let resealed = store
            .reseal_signing_keys(new_kek.id(), |record| {
                if record.kek_id != self.kek.id() {
                    return Err(RingError::WrongKek {
                        stored: record.kek_id.clone(),
                        configured: self.kek.id().to_owned(),
                    });
                }
                let seed = self
                    .kek
                    .open(&record.kid, &record.private_key)
                    .ok_or_else(|| RingError::Unsealable {
                        kid: record.kid.clone(),
                    })?;
                Ok(new_kek.seal(&record.kid, seed.expose_secret()))
            })
            .await?;
        let detail = format!("kek={}->{} keys={resealed}", self.kek.id(), new_kek.id());
        tracing::info!(resealed, kek = new_kek.id(), "signing keys resealed");
        audit_key_event(store, "keys_resealed", detail, super::now_millis()).await?;
        Ok(resealed)
    }
}

async fn audit_key_event(
    store: &Store,
    event: &str,
    detail: String,
    now: i64,
) -> Result<(), sqlx::Error> {
    store
        .insert_audit_event(&AuditEvent {
            occurred_at: now,
            event: event.to_owned(),
            detail: Some(detail),
            ..Default::default()
        })
        .await
}

/// What `gatehouse keys rotate` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new key.
    pub kid: String,
    /// The key it replaces.
    pub previous: Option<String>,
    /// When instances start signing with it (Unix ms).
    pub activates_at: i64,
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

impl AuthService {
    /// Re-reads the signing keys from the database. Returns whether the key
    /// new tokens are signed with changed. A failure keeps the keys in use.
    pub async fn reload_keys(&self) -> Result<bool, RingError> {
        let KeySource::Database(keys) = &self.keys else {
            return Ok(false);
        };
        keys.last_reload
            .store(super::now_millis(), Ordering::Relaxed);
        let ring = keys.ring(&self.store.signing_keys().await?)?;
        let now = super::now_millis();
        let before = self.access.ring().signing(now).kid().to_owned();
        let after = ring.signing(now).kid().to_owned();
        if let Err(ring) = self.access.replace_ring(ring) {
            // Only Ed25519 keys are stored, so this cannot happen today.
            return Err(RingError::UnknownAlgorithm {
                kid: after,
                algorithm: format!("{:?}", ring.algorithm()),
            });
        }
        if before != after {
            tracing::info!(kid = %after, previous = %before, "now signing with a new key");
        }
        Ok(before != after)
    }

    /// Reloads the keys for a token whose `kid` is unknown here (another
    /// instance may have picked up a rotation first), at most once a
    /// second. Returns whether it reloaded.
    pub(super) async fn reload_keys_for_unknown_kid(&self) -> bool {
        let KeySource::Database(keys) = &self.keys else {
            return false;
        };
        let now = super::now_millis();
        let last = keys.last_reload.load(Ordering::Relaxed);
        if now - last < UNKNOWN_KID_RELOAD_MILLIS
            || keys
                .last_reload
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        match self.reload_keys().await {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(error = %err, "cannot reload the signing keys");
                false
            }
        }
    }

    /// Deletes keys retired before `now`; they verify nothing any more.
    pub async fn prune_keys(&self, now: i64) -> Result<u64, sqlx::Error> {
        let KeySource::Database(keys) = &self.keys else {
            return Ok(0);
        };
        self.store
            .prune_signing_keys(now - super::refresh::millis(keys.overlap))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::generate()
    }

    #[test]
    fn the_newest_active_key_signs_and_older_ones_verify_until_they_retire() {
        let (old, new) = (key(), key());
        let (old_kid, new_kid) = (old.kid().to_owned(), new.kid().to_owned());
        let ring = KeyRing::new(vec![(old, 0), (new, 1_000)], Duration::from_secs(10)).unwrap();
        assert_eq!(ring.signing(999).kid(), old_kid);
        assert_eq!(ring.signing(1_000).kid(), new_kid);
        // The next key is published, and verifies, before it signs.
        assert!(ring.verifying(&new_kid, 0).is_some());
        assert!(ring.verifying(&old_kid, 10_999).is_some());
        assert!(ring.verifying(&old_kid, 11_000).is_none());
        let published: Vec<_> = ring.published(11_000).map(|key| key.kid()).collect();
        assert_eq!(published, [new_kid.as_str()]);
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_for_its_kid() {
        let kek = Kek::from_bytes(super::super::random_bytes());
        let sealed = kek.seal("kid-1", &[7; 32]);
        assert_eq!(
            kek.open("kid-1", &sealed).unwrap().expose_secret(),
            &[7; 32]
        );
        assert!(kek.open("kid-2", &sealed).is_none());
        let other = Kek::from_bytes(super::super::random_bytes());
        assert!(other.open("kid-1", &sealed).is_none());
        assert_ne!(kek.id(), other.id());
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        tampered[30] ^= 1;
        assert!(
            kek.open("kid-1", &URL_SAFE_NO_PAD.encode(tampered))
                .is_none()
        );
        assert!(!format!("{kek:?}").contains("key:"));
    }

    #[test]
    fn a_kek_file_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/key-encryption-key");
        let first = Kek::load_or_create(&path).unwrap();
        let again = Kek::load_or_create(&path).unwrap();
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_kek_file_must_hold_32_base64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        for bad in ["", "not base64!", &STANDARD.encode([1u8; 31])] {
            std::fs::write(&path, bad).unwrap();
            assert!(matches!(Kek::load(&path), Err(KeyError::BadKek { .. })));
        }
        std::fs::write(&path, format!("{}\n", STANDARD.encode([1u8; 32]))).unwrap();
        let standard = Kek::load(&path).unwrap();
        std::fs::write(&path, URL_SAFE_NO_PAD.encode([1u8; 32])).unwrap();
        assert_eq!(Kek::load(&path).unwrap().id(), standard.id());
    }
}
