//! Refresh tokens: opaque, 256 random bits, stored only as a SHA-256 hash.
//!
//! Every refresh rotates the token. The successor is derived, not drawn:
//! `HMAC-SHA256(server secret, parent)`. So a request that re-presents a
//! just-rotated parent (a second tab, a retry whose response was lost) can be
//! given the very same successor without the plaintext ever being stored, and
//! all instances sharing the database (and so the secret) agree on it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};

use crate::store::RefreshTokenRecord;

/// The name of the shared successor-derivation secret in the store.
pub const SUCCESSOR_SECRET_NAME: &str = "refresh_successor_v1";

/// The hex SHA-256 of a refresh token: the only form the store ever sees.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Derives successors of refresh tokens.
#[derive(Clone)]
pub struct Successors {
    secret: SecretString,
}

impl std::fmt::Debug for Successors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Successors(..)")
    }
}

impl Successors {
    /// `secret` is the shared server secret (base64url of 32 random bytes).
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    /// The token that replaces `parent` when it is rotated.
    pub fn successor(&self, parent: &str) -> SecretString {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"gatehouse refresh successor v1\0");
        mac.update(parent.as_bytes());
        SecretString::from(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
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
    /// same successor. Zero: any second presentation is reuse.
    pub grace: Duration,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Live and not yet rotated: rotate it.
    Rotate,
    /// Rotated within the grace window: answer with the same successor.
    Replay,
    /// Rotated before the grace window: reuse, revoke the family.
    Reuse,
    /// Expired (absolute or idle) or its family revoked.
    Dead,
}

impl RefreshPolicy {
    /// Decides for `token` at `now` (ms). The grace window counts from the
    /// token's own `rotated_at`, which only rotation ever writes.
    pub fn decide(&self, token: &RefreshTokenRecord, now: i64) -> Decision {
        if token.session_revoked_at.is_some() || now >= token.session_expires_at {
            return Decision::Dead;
        }
        if let Some(rotated_at) = token.rotated_at {
            let in_grace = !self.grace.is_zero() && now - rotated_at <= millis(self.grace);
            return if in_grace {
                Decision::Replay
            } else {
                Decision::Reuse
            };
        }
        match self.idle_ttl {
            Some(idle) if now - token.token_created_at >= millis(idle) => Decision::Dead,
            _ => Decision::Rotate,
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

/// A duration in whole milliseconds, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(rotated_at: Option<i64>) -> RefreshTokenRecord {
        RefreshTokenRecord {
            session_id: "s".into(),
            user_id: "u".into(),
            client_id: None,
            scope: "profile".into(),
            token_created_at: 0,
            rotated_at,
            session_expires_at: 100_000,
            session_revoked_at: None,
        }
    }

    const POLICY: RefreshPolicy = RefreshPolicy {
        ttl: Duration::from_secs(100),
        idle_ttl: Some(Duration::from_secs(50)),
        grace: Duration::from_secs(10),
    };

    #[test]
    fn the_successor_is_deterministic_and_secret_dependent() {
        let a = Successors::new("secret-a".to_owned().into());
        let b = Successors::new("secret-b".to_owned().into());
        assert_eq!(
            a.successor("t").expose_secret(),
            a.successor("t").expose_secret()
        );
        assert_ne!(
            a.successor("t").expose_secret(),
            b.successor("t").expose_secret()
        );
        assert_ne!(
            a.successor("t").expose_secret(),
            a.successor("u").expose_secret()
        );
        assert_eq!(a.successor("t").expose_secret().len(), 43);
    }

    #[test]
    fn the_grace_window_counts_from_the_rotation() {
        assert_eq!(POLICY.decide(&token(None), 1_000), Decision::Rotate);
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), 30_000),
            Decision::Replay
        );
        assert_eq!(POLICY.decide(&token(Some(20_000)), 30_001), Decision::Reuse);
        let strict = RefreshPolicy {
            grace: Duration::ZERO,
            ..POLICY
        };
        assert_eq!(strict.decide(&token(Some(20_000)), 20_000), Decision::Reuse);
    }

    #[test]
    fn expiry_and_revocation_kill_a_token() {
        assert_eq!(POLICY.decide(&token(None), 50_000), Decision::Dead);
        assert_eq!(POLICY.decide(&token(None), 100_000), Decision::Dead);
        let mut revoked = token(None);
        revoked.session_revoked_at = Some(1);
        assert_eq!(POLICY.decide(&revoked, 2), Decision::Dead);
    }

    #[test]
    fn expires_in_never_passes_the_family_expiry() {
        assert_eq!(POLICY.expires_in(100_000, 0), 50);
        assert_eq!(POLICY.expires_in(100_000, 80_000), 20);
        assert_eq!(POLICY.expires_in(100_000, 200_000), 0);
    }

    #[test]
    fn the_stored_hash_is_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
