//! The key ring's home in the database: first key, reloads, rotation,
//! reset, re-sealing and pruning.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use secrecy::ExposeSecret as _;

use super::{Kek, KeyRing, RingError, Rotation};
use super::{TokenKey, read_ed25519_pem};
use crate::audit::AuditKind;
use crate::auth::random_bytes;
use crate::clock::Clock;
use crate::clock::UnixMillis;
use crate::store::{AuditEvent, SigningKeyRecord, Store};

/// The `algorithm` column of Ed25519 keys.
const EDDSA: &str = "EdDSA";
/// The least time between two reloads triggered by unknown `kid`s, so a
/// flood of forged tokens costs at most one query a second.
const UNKNOWN_KID_RELOAD: std::time::Duration = std::time::Duration::from_secs(1);

/// The signing keys kept in the database, and how to read them.
#[derive(Debug)]
pub struct DatabaseKeys {
    pub kek: Kek,
    /// How long a key still verifies after the next one activates.
    pub overlap: Duration,
    /// When the ring was last read (Unix ms), to rate-limit reloads.
    last_reload: AtomicI64,
    clock: Arc<dyn Clock>,
}

impl DatabaseKeys {
    pub fn new(kek: Kek, overlap: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            kek,
            overlap,
            last_reload: AtomicI64::new(0),
            clock,
        }
    }

    /// The stored keys, unsealed into a ring.
    pub async fn reload(&self, store: &Store) -> Result<KeyRing, RingError> {
        self.last_reload
            .store(self.clock.now().as_millis(), Ordering::Relaxed);
        self.ring(&store.signing_keys().await?)
    }

    /// Whether a token with an unknown `kid` may trigger a reload now: at
    /// most once a second, however many such tokens arrive.
    pub fn may_reload_for_unknown_kid(&self) -> bool {
        let now = self.clock.now();
        let last = self.last_reload.load(Ordering::Relaxed);
        now.since(UnixMillis::from_millis(last)) >= UNKNOWN_KID_RELOAD
            && self
                .last_reload
                .compare_exchange(last, now.as_millis(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Deletes keys retired before `now`; they verify nothing any more.
    pub async fn prune(&self, store: &Store, now: UnixMillis) -> Result<u64, sqlx::Error> {
        store.prune_signing_keys(now - self.overlap).await
    }

    /// Reads the ring, creating its first key if the database has none:
    /// the key in `legacy_file` if that exists (a data directory from before
    /// keys moved into the database), or a new one.
    pub async fn load(&self, store: &Store, legacy_file: &Path) -> Result<KeyRing, RingError> {
        self.ring(&self.records_or_first(store, legacy_file).await?)
    }

    /// The stored keys, after creating the first one if there are none.
    async fn records_or_first(
        &self,
        store: &Store,
        legacy_file: &Path,
    ) -> Result<Vec<SigningKeyRecord>, RingError> {
        let records = store.signing_keys().await?;
        if !records.is_empty() {
            return Ok(records);
        }
        let key = if legacy_file.exists() {
            let key = read_ed25519_pem(legacy_file)?;
            tracing::info!(
                path = %legacy_file.display(),
                "imported the signing key file into the database; it is no longer read"
            );
            key
        } else {
            SigningKey::from_bytes(&random_bytes::<32>())
        };
        let now = self.clock.now();
        // Instances starting together race here; the unique generation
        // decides, and the losers read the winner's key.
        self.insert(store, &key, 1, now, now).await?;
        Ok(store.signing_keys().await?)
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
        created_at: UnixMillis,
        activates_at: UnixMillis,
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
        legacy_file: &Path,
        activate_in: Duration,
    ) -> Result<Rotation, RingError> {
        let mut records = self.records_or_first(store, legacy_file).await?;
        for _ in 0..8 {
            // Refuse to add a key the others could not be read beside.
            self.ring(&records)?;
            let last = records.last();
            let now = self.clock.now();
            // Activations never go back in time, so the newest key is
            // always the last to activate.
            let activates_at = (now + activate_in).max(last.map_or(now, |last| last.activates_at));
            let generation = last.map_or(1, |last| last.generation + 1);
            let key = SigningKey::from_bytes(&random_bytes::<32>());
            let Some(kid) = self
                .insert(store, &key, generation, now, activates_at)
                .await?
            else {
                records = store.signing_keys().await?;
                continue;
            };
            let previous = last.map(|last| last.kid.clone());
            let detail = format!(
                "kid={kid} previous={} activates_at={activates_at}",
                previous.as_deref().unwrap_or("-")
            );
            tracing::info!(%kid, ?previous, %activates_at, "signing key rotated");
            audit_key_event(store, AuditKind::KeyRotated, detail, now).await?;
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
            let now = self.clock.now();
            let key = SigningKey::from_bytes(&random_bytes::<32>());
            let Some(kid) = self.insert(store, &key, generation, now, now).await? else {
                continue;
            };
            let discarded = store.delete_signing_keys_before(generation).await?;
            tracing::warn!(%kid, discarded, "signing keys reset");
            let detail = format!("kid={kid} discarded={discarded}");
            audit_key_event(store, AuditKind::KeysReset, detail, now).await?;
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
        audit_key_event(store, AuditKind::KeysResealed, detail, self.clock.now()).await?;
        Ok(resealed)
    }
}

async fn audit_key_event(
    store: &Store,
    event: AuditKind,
    detail: String,
    now: UnixMillis,
) -> Result<(), sqlx::Error> {
    store
        .insert_audit_event(&AuditEvent {
            occurred_at: now,
            event: event.as_str().to_owned(),
            detail: Some(detail),
            ..Default::default()
        })
        .await
}
