//! Refresh tokens: opaque, 256 random bits, stored only as a SHA-256 hash.
//!
//! Every refresh rotates the token. The successor is derived, not drawn:
//! `HMAC-SHA256(server secret, reissues ‖ parent)`. So a request that
//! re-presents a just-rotated parent (a second tab, a retry whose response
//! was lost) can be given the very same successor without the plaintext
//! ever being stored, and all instances sharing the database (and so the
//! secret) agree on it. The secret is kept in the database sealed with the
//! key-encryption key: a dump alone cannot compute a chain forward.
//!
//! Only within the grace window may two presenters of one token share its
//! successor. After it, a parent whose successor was never used gets a new
//! successor (its `reissues` counter moves on) and the unused one is
//! superseded: if the two presenters were an owner and a thief, whichever
//! holds the superseded token is caught on its next use, and the family
//! is revoked.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

use super::keys::{Kek, RingError};
use crate::clock::millis;
use crate::store::{RefreshState, RefreshTokenRecord, Store};

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
    pub async fn load(store: &Store, kek: &Kek, now: i64) -> Result<Self, RingError> {
        let name = SUCCESSOR_SECRET_NAME;
        let candidate = kek.seal_secret(name, &super::random_bytes::<32>());
        let (sealed, kek_id) = store
            .get_or_create_sealed_secret(name, &candidate, kek.id(), now)
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
    pub async fn reset(store: &Store, kek: &Kek, now: i64) -> Result<(), RingError> {
        let name = SUCCESSOR_SECRET_NAME;
        let sealed = kek.seal_secret(name, &super::random_bytes::<32>());
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

/// Refresh-token lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Absolute lifetime of a family, from login; refreshing never extends it.
    pub ttl: Duration,
    /// A token unused for this long expires, if set.
    pub idle_ttl: Option<Duration>,
    /// How long after its rotation a token may be presented again and get the
    /// same successor, whatever became of it. Zero: strict, any second
    /// presentation is reuse (and `replay_window` does not apply).
    pub grace: Duration,
    /// How long after its rotation a token whose successor has never been
    /// used still gets that successor: the client that presents it never
    /// received it (a lost response, an outage, a crash).
    pub replay_window: Duration,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Live and not yet rotated: rotate it.
    Rotate,
    /// Rotated within the grace window: answer with the same successor.
    Replay,
    /// Rotated before the grace window, and its successor never used within
    /// the replay window: answer with a new successor and supersede the
    /// unused one.
    Reissue,
    /// Rotated, and neither of those; or a superseded successor: reuse,
    /// revoke the family.
    Reuse,
    /// Expired (absolute or idle) or its family revoked.
    Dead,
}

impl RefreshPolicy {
    /// Decides for a presented token at `now` (ms). Both windows count from
    /// the token's own `rotated_at`, which its rotation writes and each
    /// reissue of its successor moves on.
    ///
    /// Within the grace window a rotated token gets its successor whatever
    /// became of it (two tabs, racing requests). After it, only a new one,
    /// and only while the current successor has never been used: whoever
    /// presents the parent then may never have received it (a lost
    /// response, an outage, a crash), or may be racing a thief who did; the
    /// new successor supersedes the unused one, so that of the two, the one
    /// left holding it is caught on its next use. Once the successor has
    /// been used, the parent is stolen or replayed (RFC 9700 §4.14.2).
    pub fn decide(&self, state: &RefreshState, now: i64) -> Decision {
        let token = &state.token;
        if token.session_revoked_at.is_some()
            || now >= token.session_expires_at
            || state.user_disabled
        {
            return Decision::Dead;
        }
        if token.superseded_at.is_some() {
            return Decision::Reuse;
        }
        let Some(rotated_at) = token.rotated_at else {
            return self.unless_idle(token.token_created_at, now, Decision::Rotate);
        };
        if self.grace.is_zero() {
            return Decision::Reuse;
        }
        let since_rotation = now - rotated_at;
        if since_rotation <= millis(self.grace) {
            return Decision::Replay;
        }
        match &state.successor {
            Some(successor)
                if successor.is_unused() && since_rotation <= millis(self.replay_window) =>
            {
                self.unless_idle(successor.created_at, now, Decision::Reissue)
            }
            _ => Decision::Reuse,
        }
    }

    /// `decision`, unless a token created at `created_at` has been idle too long.
    fn unless_idle(&self, created_at: i64, now: i64, decision: Decision) -> Decision {
        match self.idle_ttl {
            Some(idle) if now - created_at >= millis(idle) => Decision::Dead,
            _ => decision,
        }
    }

    /// Seconds until a token issued at `now` (ms) expires, for `refresh_token_expires_in`.
    pub fn expires_in(&self, session_expires_at: i64, now: i64) -> i64 {
        let absolute = session_expires_at - now;
        let remaining = self
            .idle_ttl
            .map_or(absolute, |idle| absolute.min(millis(idle)));
        remaining.max(0) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TokenHash;
    use crate::store::SuccessorRecord;

    fn token(rotated_at: Option<i64>) -> RefreshState {
        RefreshState {
            token: RefreshTokenRecord {
                session_id: "s".into(),
                user_id: "u".into(),
                client_id: None,
                scope: "profile".into(),
                token_created_at: 0,
                rotated_at,
                successor_hash: rotated_at.map(|_| TokenHash::of("successor")),
                reissues: 0,
                superseded_at: None,
                session_expires_at: 100_000,
                session_revoked_at: None,
                session_created_at: 0,
                amr: "pwd".into(),
            },
            successor: rotated_at.map(|created_at| SuccessorRecord {
                token_hash: TokenHash::of("successor"),
                created_at,
                rotated_at: None,
                superseded_at: None,
            }),
            user_disabled: false,
        }
    }

    /// A rotated token whose successor has been used at `used_at`.
    fn used_successor(rotated_at: i64, used_at: i64) -> RefreshState {
        let mut state = token(Some(rotated_at));
        state.successor.as_mut().unwrap().rotated_at = Some(used_at);
        state
    }

    const POLICY: RefreshPolicy = RefreshPolicy {
        ttl: Duration::from_secs(100),
        idle_ttl: Some(Duration::from_secs(50)),
        grace: Duration::from_secs(10),
        replay_window: Duration::from_secs(40),
    };

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
        let mut record = token(Some(1_000)).token;
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

    #[test]
    fn the_grace_window_counts_from_the_rotation() {
        assert_eq!(POLICY.decide(&token(None), 1_000), Decision::Rotate);
        assert_eq!(
            POLICY.decide(&used_successor(20_000, 21_000), 30_000),
            Decision::Replay
        );
        assert_eq!(
            POLICY.decide(&used_successor(20_000, 21_000), 30_001),
            Decision::Reuse
        );
    }

    #[test]
    fn past_the_grace_window_an_unused_successor_is_reissued_until_the_replay_window_ends() {
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), 30_000),
            Decision::Replay
        );
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), 30_001),
            Decision::Reissue
        );
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), 60_000),
            Decision::Reissue
        );
        assert_eq!(POLICY.decide(&token(Some(20_000)), 60_001), Decision::Reuse);
        let mut missing = token(Some(20_000));
        missing.successor = None;
        assert_eq!(POLICY.decide(&missing, 45_000), Decision::Reuse);
    }

    #[test]
    fn a_disabled_account_refreshes_nothing() {
        let mut disabled = token(None);
        disabled.user_disabled = true;
        assert_eq!(POLICY.decide(&disabled, 1_000), Decision::Dead);
    }

    #[test]
    fn a_superseded_successor_is_reuse_at_once() {
        let mut superseded = token(None);
        superseded.token.superseded_at = Some(5_000);
        assert_eq!(POLICY.decide(&superseded, 5_000), Decision::Reuse);
        let mut successor_superseded = token(Some(20_000));
        successor_superseded
            .successor
            .as_mut()
            .unwrap()
            .superseded_at = Some(25_000);
        assert_eq!(
            POLICY.decide(&successor_superseded, 45_000),
            Decision::Reuse
        );
    }

    #[test]
    fn an_idle_successor_is_not_reissued() {
        let mut idle = token(Some(1_000));
        idle.token.session_expires_at = 1_000_000;
        let patient = RefreshPolicy {
            replay_window: Duration::from_secs(600),
            ..POLICY
        };
        assert_eq!(patient.decide(&idle, 50_999), Decision::Reissue);
        assert_eq!(patient.decide(&idle, 51_000), Decision::Dead);
    }

    #[test]
    fn with_no_grace_window_every_second_presentation_is_reuse() {
        let strict = RefreshPolicy {
            grace: Duration::ZERO,
            ..POLICY
        };
        assert_eq!(strict.decide(&token(Some(20_000)), 20_000), Decision::Reuse);
        assert_eq!(strict.decide(&token(Some(20_000)), 30_000), Decision::Reuse);
    }

    #[test]
    fn expires_in_never_passes_the_family_expiry() {
        assert_eq!(POLICY.expires_in(100_000, 0), 50);
        assert_eq!(POLICY.expires_in(100_000, 80_000), 20);
        assert_eq!(POLICY.expires_in(100_000, 200_000), 0);
    }
}
