//! Deriving successors: `HMAC-SHA256(server secret, reissues ‖ parent)`,
//! with the secret kept in the database sealed with the key-encryption key
//! (a dump alone cannot compute a chain forward), and the legacy secret of
//! tokens rotated before reissues existed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

use crate::auth::keys::{Kek, RingError};
use crate::store::{RefreshTokenRecord, Store};

/// The name of the shared successor-derivation secret in the store, sealed
/// with the key-encryption key.
pub const SUCCESSOR_SECRET_NAME: &str = "refresh_successor_v2";
/// The secret that derived successors before reissues existed, kept in the
/// clear; read for tokens rotated before the upgrade, and removed once no
/// such token can be replayed.
pub const LEGACY_SUCCESSOR_SECRET_NAME: &str = "refresh_successor_v1";

/// Derives successors of refresh tokens.
pub struct Successors {
    key: SecretBox<[u8; 32]>,
    legacy: Option<SecretString>,
}

impl std::fmt::Debug for Successors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Successors(..)")
    }
}

impl Successors {
    /// `key` is the shared server secret; `legacy` the one of
    /// [`LEGACY_SUCCESSOR_SECRET_NAME`], while it is kept.
    pub fn new(key: SecretBox<[u8; 32]>, legacy: Option<SecretString>) -> Self {
        Self { key, legacy }
    }

    /// The instances' shared secret, unsealed with `kek` (the first instance
    /// on a database creates it), and the legacy secret while it is kept.
    pub async fn load(
        store: &Store,
        kek: &Kek,
        now: crate::clock::UnixMillis,
    ) -> Result<Self, RingError> {
        let name = SUCCESSOR_SECRET_NAME;
        let candidate = kek.seal_secret(name, &crate::auth::random_bytes::<32>());
        let (sealed, kek_id) = store
            .get_or_create_secret(name, &candidate, Some(kek.id()), now)
            .await?;
        let stored = kek_id.unwrap_or_default();
        if stored != kek.id() {
            return Err(RingError::SecretWrongKek {
                name: name.to_owned(),
                stored,
                configured: kek.id().to_owned(),
            });
        }
        let key = kek
            .open_secret(name, &sealed)
            .ok_or_else(|| RingError::SecretUnsealable {
                name: name.to_owned(),
            })?;
        let legacy = store.find_secret(LEGACY_SUCCESSOR_SECRET_NAME).await?;
        Ok(Self::new(key, legacy.map(SecretString::from)))
    }

    /// Re-seals the shared secret from `old` under `new` (a KEK rotation:
    /// the secret itself, and so every successor, stays the same); whether
    /// there was one sealed under `old`.
    pub async fn reseal(store: &Store, old: &Kek, new: &Kek) -> Result<bool, RingError> {
        let name = SUCCESSOR_SECRET_NAME;
        let Some(sealed) = store.find_secret(name).await? else {
            return Ok(false);
        };
        let Some(key) = old.open_secret(name, &sealed) else {
            return Ok(false);
        };
        let resealed = new.seal_secret(name, key.expose_secret());
        Ok(store
            .reseal_secret(name, old.id(), &resealed, new.id())
            .await?)
    }

    /// Replaces the shared secret with a new one sealed with `kek`, after
    /// the key-encryption key was lost (`gatehouse keys reset`). Sessions
    /// survive; a rotated token presented again gets a new successor
    /// instead of the same one.
    pub async fn reset(
        store: &Store,
        kek: &Kek,
        now: crate::clock::UnixMillis,
    ) -> Result<(), RingError> {
        let name = SUCCESSOR_SECRET_NAME;
        let sealed = kek.seal_secret(name, &crate::auth::random_bytes::<32>());
        Ok(store.replace_secret(name, &sealed, kek.id(), now).await?)
    }

    /// The token that replaces `parent` after its successor was reissued
    /// `reissues` times.
    pub fn successor(&self, parent: &str, reissues: i64) -> SecretString {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(b"gatehouse refresh successor v2\0");
        mac.update(&reissues.to_be_bytes());
        mac.update(parent.as_bytes());
        SecretString::from(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The successor that `parent` was given before this version, if the
    /// legacy secret is still kept.
    pub fn legacy_successor(&self, parent: &str) -> Option<SecretString> {
        let secret = self.legacy.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"gatehouse refresh successor v1\0");
        mac.update(parent.as_bytes());
        Some(SecretString::from(
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
        ))
    }

    /// The successor `parent` was last given, as its record says: derived
    /// again, so that a replay answers exactly what the rotation answered.
    pub fn current(&self, parent: &str, record: &RefreshTokenRecord) -> Option<SecretString> {
        match record.successor_hash {
            Some(_) => Some(self.successor(parent, record.reissues)),
            None => self.legacy_successor(parent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TokenHash;

    fn successors(secret: u8) -> Successors {
        Successors::new(SecretBox::new(Box::new([secret; 32])), None)
    }

    #[test]
    fn the_successor_is_deterministic_and_depends_on_the_secret_and_the_reissues() {
        let (a, b) = (successors(1), successors(2));
        let of = |s: &Successors, parent, n| s.successor(parent, n).expose_secret().to_owned();
        assert_eq!(of(&a, "t", 0), of(&a, "t", 0));
        assert_ne!(of(&a, "t", 0), of(&b, "t", 0));
        assert_ne!(of(&a, "t", 0), of(&a, "u", 0));
        assert_ne!(of(&a, "t", 0), of(&a, "t", 1));
        assert_eq!(of(&a, "t", 0).len(), 43);
    }

    #[test]
    fn tokens_rotated_before_the_upgrade_are_derived_with_the_legacy_secret() {
        let legacy = Successors::new(
            SecretBox::new(Box::new([1; 32])),
            Some("legacy-secret".to_owned().into()),
        );
        let mut record = crate::auth::refresh::policy::tests::token(Some(1_000)).token;
        record.successor_hash = None;
        // What version 1 computed: HMAC(secret, label ‖ parent).
        let mut mac = Hmac::<Sha256>::new_from_slice(b"legacy-secret").unwrap();
        mac.update(b"gatehouse refresh successor v1\0t");
        let v1 = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(legacy.current("t", &record).unwrap().expose_secret(), v1);
        assert!(successors(1).current("t", &record).is_none());
        record.successor_hash = Some(TokenHash::of("x"));
        record.reissues = 3;
        assert_eq!(
            legacy.current("t", &record).unwrap().expose_secret(),
            legacy.successor("t", 3).expose_secret()
        );
    }
}
