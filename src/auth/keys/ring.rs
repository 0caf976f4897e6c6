//! The key ring: which key signs, and which keys verify, at a given time.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::TokenKey;
use crate::clock::UnixMillis;

/// One key of the ring, with its lifetime (Unix milliseconds).
#[derive(Debug, Clone)]
pub struct RingKey {
    pub key: Arc<TokenKey>,
    /// From when new tokens are signed with it.
    pub activates_at: UnixMillis,
    /// From when tokens signed with it no longer verify; `None` while no
    /// newer key is active.
    pub retires_at: Option<UnixMillis>,
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
                activates_at: UnixMillis::MIN,
                retires_at: None,
            }],
        }
    }
}

impl KeyRing {
    /// A ring of `(key, activates_at)`, oldest first, where a key retires
    /// `overlap` after the next one activates. `None` when `keys` is empty.
    pub fn new(keys: Vec<(TokenKey, UnixMillis)>, overlap: Duration) -> Option<Self> {
        let next_activations: Vec<Option<UnixMillis>> = keys
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
                retires_at: next.map(|next| next + overlap),
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
    pub fn signing(&self, now: UnixMillis) -> &Arc<TokenKey> {
        &self.current(now).key
    }

    /// The newest active key at `now`, with its lifetime.
    pub fn current(&self, now: UnixMillis) -> &RingKey {
        let active = self.keys.iter().rev().find(|key| key.activates_at <= now);
        active.unwrap_or(&self.keys[0])
    }

    /// The key `kid`, if tokens signed with it verify at `now`.
    pub fn verifying(&self, kid: &str, now: UnixMillis) -> Option<&Arc<TokenKey>> {
        self.published(now).find(|key| key.kid() == kid)
    }

    /// The keys whose tokens verify at `now` (the JWKS), oldest first:
    /// earlier keys until they retire, the current one, and any next one.
    pub fn published(&self, now: UnixMillis) -> impl Iterator<Item = &Arc<TokenKey>> {
        self.keys
            .iter()
            .filter(move |key| key.retires_at.is_none_or(|retires_at| now < retires_at))
            .map(|key| &key.key)
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
        let ring = KeyRing::new(
            vec![
                (old, UnixMillis::from_millis(0)),
                (new, UnixMillis::from_millis(1_000)),
            ],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(ring.signing(UnixMillis::from_millis(999)).kid(), old_kid);
        assert_eq!(ring.signing(UnixMillis::from_millis(1_000)).kid(), new_kid);
        // The next key is published, and verifies, before it signs.
        assert!(
            ring.verifying(&new_kid, UnixMillis::from_millis(0))
                .is_some()
        );
        assert!(
            ring.verifying(&old_kid, UnixMillis::from_millis(10_999))
                .is_some()
        );
        assert!(
            ring.verifying(&old_kid, UnixMillis::from_millis(11_000))
                .is_none()
        );
        let published: Vec<_> = ring
            .published(UnixMillis::from_millis(11_000))
            .map(|key| key.kid())
            .collect();
        assert_eq!(published, [new_kid.as_str()]);
    }
}
