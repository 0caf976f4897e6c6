//! The key ring's home in the database: first key, reloads, rotation,
//! reset, re-sealing and pruning.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use secrecy::ExposeSecret as _;

use super::{Kek, KeyRing, KeySource, RingError, Rotation};
use crate::audit::AuditKind;
use crate::auth::jwt::{TokenKey, read_ed25519_pem};
use crate::auth::refresh::millis;
use crate::auth::service::AuthService;
use crate::auth::{now_millis, random_bytes};
use crate::store::{AuditEvent, SigningKeyRecord, Store};

/// The `algorithm` column of Ed25519 keys.
const EDDSA: &str = "EdDSA";
/// The least time between two reloads triggered by unknown `kid`s, so a
/// flood of forged tokens costs at most one query a second.
const UNKNOWN_KID_RELOAD_MILLIS: i64 = 1_000;

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
        let now = now_millis();
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
        legacy_file: &Path,
        activate_in: Duration,
    ) -> Result<Rotation, RingError> {
        let mut records = self.records_or_first(store, legacy_file).await?;
        for _ in 0..8 {
            // Refuse to add a key the others could not be read beside.
            self.ring(&records)?;
            let last = records.last();
            let now = now_millis();
            // Activations never go back in time, so the newest key is
            // always the last to activate.
            let activates_at =
                (now + millis(activate_in)).max(last.map_or(now, |last| last.activates_at));
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
            tracing::info!(%kid, ?previous, activates_at, "signing key rotated");
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
            let now = now_millis();
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
        audit_key_event(store, AuditKind::KeysResealed, detail, now_millis()).await?;
        Ok(resealed)
    }
}

async fn audit_key_event(
    store: &Store,
    event: AuditKind,
    detail: String,
    now: i64,
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

impl AuthService {
    /// Re-reads the signing keys from the database. Returns whether the key
    /// new tokens are signed with changed. A failure keeps the keys in use.
    pub async fn reload_keys(&self) -> Result<bool, RingError> {
        let KeySource::Database(keys) = &self.keys else {
            return Ok(false);
        };
        keys.last_reload.store(now_millis(), Ordering::Relaxed);
        let ring = keys.ring(&self.store.signing_keys().await?)?;
        let now = now_millis();
        let before = self.access.ring().signing(now).kid().to_owned();
        let after = ring.signing(now).kid().to_owned();
        self.access.replace_ring(ring);
        if before != after {
            tracing::info!(kid = %after, previous = %before, "now signing with a new key");
        }
        Ok(before != after)
    }

    /// Reloads the keys for a token whose `kid` is unknown here (another
    /// instance may have picked up a rotation first), at most once a
    /// second. Returns whether it reloaded.
    pub(crate) async fn reload_keys_for_unknown_kid(&self) -> bool {
        let KeySource::Database(keys) = &self.keys else {
            return false;
        };
        let now = now_millis();
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
            .prune_signing_keys(now - millis(keys.overlap))
            .await
    }
}
