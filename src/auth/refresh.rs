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
use sha2::Sha256;

use crate::clock::millis;
use crate::store::{RefreshState, SuccessorRecord};

/// The name of the shared successor-derivation secret in the store.
pub const SUCCESSOR_SECRET_NAME: &str = "refresh_successor_v1";

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
    /// Rotated within the grace window, or its successor never used within
    /// the replay window: answer with the same successor.
    Replay,
    /// Rotated, and neither of those: reuse, revoke the family.
    Reuse,
    /// Expired (absolute or idle) or its family revoked.
    Dead,
}

impl RefreshPolicy {
    /// Decides for a presented token at `now` (ms). Both windows count from
    /// the token's own `rotated_at`, which only rotation ever writes.
    ///
    /// Within the grace window a rotated token gets its successor whatever
    /// became of it (two tabs, racing requests). After it, only while the
    /// successor has never been used: whoever presents the parent then
    /// cannot have received the successor, or holds no more than the
    /// successor itself, which its owner still holds too. Once the successor
    /// has been used, the parent is stolen or replayed (RFC 9700 §4.14.2).
    pub fn decide(&self, state: &RefreshState, now: i64) -> Decision {
        let token = &state.token;
        if token.session_revoked_at.is_some() || now >= token.session_expires_at {
            return Decision::Dead;
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
        match state.successor {
            Some(SuccessorRecord {
                created_at,
                rotated_at: None,
            }) if since_rotation <= millis(self.replay_window) => {
                self.unless_idle(created_at, now, Decision::Replay)
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
    use crate::store::RefreshTokenRecord;

    fn token(rotated_at: Option<i64>) -> RefreshState {
        RefreshState {
            token: RefreshTokenRecord {
                session_id: "s".into(),
                user_id: "u".into(),
                client_id: None,
                scope: "profile".into(),
                token_created_at: 0,
                rotated_at,
                session_expires_at: 100_000,
                session_revoked_at: None,
                session_created_at: 0,
            },
            successor: rotated_at.map(|created_at| SuccessorRecord {
                created_at,
                rotated_at: None,
            }),
        }
    }

    /// A rotated token whose successor has been used at `used_at`.
    fn used_successor(rotated_at: i64, used_at: i64) -> RefreshState {
        let mut state = token(Some(rotated_at));
        state.successor = Some(SuccessorRecord {
            created_at: rotated_at,
            rotated_at: Some(used_at),
        });
        state
    }

    const POLICY: RefreshPolicy = RefreshPolicy {
        ttl: Duration::from_secs(100),
        idle_ttl: Some(Duration::from_secs(50)),
        grace: Duration::from_secs(10),
        replay_window: Duration::from_secs(40),
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
            POLICY.decide(&used_successor(20_000, 21_000), 30_000),
            Decision::Replay
        );
        assert_eq!(
            POLICY.decide(&used_successor(20_000, 21_000), 30_001),
            Decision::Reuse
        );
    }

    #[test]
    fn an_unused_successor_is_replayed_until_the_replay_window_ends() {
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), 45_000),
            Decision::Replay
        );
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), 60_000),
            Decision::Replay
        );
        assert_eq!(POLICY.decide(&token(Some(20_000)), 60_001), Decision::Reuse);
        let mut missing = token(Some(20_000));
        missing.successor = None;
        assert_eq!(POLICY.decide(&missing, 45_000), Decision::Reuse);
    }

    #[test]
    fn an_idle_successor_is_not_replayed() {
        let mut idle = token(Some(1_000));
        idle.token.session_expires_at = 1_000_000;
        let patient = RefreshPolicy {
            replay_window: Duration::from_secs(600),
            ..POLICY
        };
        assert_eq!(patient.decide(&idle, 50_999), Decision::Replay);
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
