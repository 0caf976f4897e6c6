//! The refresh rule: what to do with a presented refresh token, and how
//! long tokens live. Pure: the transaction (`rotation.rs`) reads the state
//! and writes what the decision says.

use std::time::Duration;

use crate::clock::UnixMillis;
use crate::store::RefreshState;

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
    pub fn decide(&self, state: &RefreshState, now: UnixMillis) -> Decision {
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
        let since_rotation = now.since(rotated_at);
        if since_rotation <= self.grace {
            return Decision::Replay;
        }
        match &state.successor {
            Some(successor) if successor.is_unused() && since_rotation <= self.replay_window => {
                self.unless_idle(successor.created_at, now, Decision::Reissue)
            }
            _ => Decision::Reuse,
        }
    }

    /// `decision`, unless a token created at `created_at` has been idle too long.
    fn unless_idle(&self, created_at: UnixMillis, now: UnixMillis, decision: Decision) -> Decision {
        match self.idle_ttl {
            Some(idle) if now.since(created_at) >= idle => Decision::Dead,
            _ => decision,
        }
    }

    /// Seconds until a token issued at `now` expires, for `refresh_token_expires_in`.
    pub fn expires_in(&self, session_expires_at: UnixMillis, now: UnixMillis) -> i64 {
        let absolute = session_expires_at.since(now);
        let remaining = self.idle_ttl.map_or(absolute, |idle| absolute.min(idle));
        i64::try_from(remaining.as_secs()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ids::TokenHash;
    use crate::store::{RefreshTokenRecord, SuccessorRecord};

    /// `millis` after the epoch.
    pub(in crate::auth::refresh) fn at(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    pub(in crate::auth::refresh) fn token(rotated_at: Option<i64>) -> RefreshState {
        let rotated_at = rotated_at.map(at);
        RefreshState {
            token: RefreshTokenRecord {
                session_id: "s".into(),
                user_id: "u".into(),
                client_id: None,
                scope: "profile".into(),
                token_created_at: at(0),
                rotated_at,
                successor_hash: rotated_at.map(|_| TokenHash::of("successor")),
                reissues: 0,
                superseded_at: None,
                session_expires_at: at(100_000),
                session_revoked_at: None,
                session_auth_time: at(0),
                amr: "pwd".into(),
                client_confidential: 0,
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
        state.successor.as_mut().unwrap().rotated_at = Some(at(used_at));
        state
    }

    const POLICY: RefreshPolicy = RefreshPolicy {
        ttl: Duration::from_secs(100),
        idle_ttl: Some(Duration::from_secs(50)),
        grace: Duration::from_secs(10),
        replay_window: Duration::from_secs(40),
    };

    #[test]
    fn the_grace_window_counts_from_the_rotation() {
        assert_eq!(POLICY.decide(&token(None), at(1_000)), Decision::Rotate);
        assert_eq!(
            POLICY.decide(&used_successor(20_000, 21_000), at(30_000)),
            Decision::Replay
        );
        assert_eq!(
            POLICY.decide(&used_successor(20_000, 21_000), at(30_001)),
            Decision::Reuse
        );
    }

    #[test]
    fn past_the_grace_window_an_unused_successor_is_reissued_until_the_replay_window_ends() {
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), at(30_000)),
            Decision::Replay
        );
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), at(30_001)),
            Decision::Reissue
        );
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), at(60_000)),
            Decision::Reissue
        );
        assert_eq!(
            POLICY.decide(&token(Some(20_000)), at(60_001)),
            Decision::Reuse
        );
        let mut missing = token(Some(20_000));
        missing.successor = None;
        assert_eq!(POLICY.decide(&missing, at(45_000)), Decision::Reuse);
    }

    #[test]
    fn a_disabled_account_refreshes_nothing() {
        let mut disabled = token(None);
        disabled.user_disabled = true;
        assert_eq!(POLICY.decide(&disabled, at(1_000)), Decision::Dead);
    }

    #[test]
    fn a_superseded_successor_is_reuse_at_once() {
        let mut superseded = token(None);
        superseded.token.superseded_at = Some(at(5_000));
        assert_eq!(POLICY.decide(&superseded, at(5_000)), Decision::Reuse);
        let mut successor_superseded = token(Some(20_000));
        successor_superseded
            .successor
            .as_mut()
            .unwrap()
            .superseded_at = Some(at(25_000));
        assert_eq!(
            POLICY.decide(&successor_superseded, at(45_000)),
            Decision::Reuse
        );
    }

    #[test]
    fn an_idle_successor_is_not_reissued() {
        let mut idle = token(Some(1_000));
        idle.token.session_expires_at = at(1_000_000);
        let patient = RefreshPolicy {
            replay_window: Duration::from_secs(600),
            ..POLICY
        };
        assert_eq!(patient.decide(&idle, at(50_999)), Decision::Reissue);
        assert_eq!(patient.decide(&idle, at(51_000)), Decision::Dead);
    }

    #[test]
    fn with_no_grace_window_every_second_presentation_is_reuse() {
        let strict = RefreshPolicy {
            grace: Duration::ZERO,
            ..POLICY
        };
        assert_eq!(
            strict.decide(&token(Some(20_000)), at(20_000)),
            Decision::Reuse
        );
        assert_eq!(
            strict.decide(&token(Some(20_000)), at(30_000)),
            Decision::Reuse
        );
    }

    #[test]
    fn expires_in_never_passes_the_family_expiry() {
        assert_eq!(POLICY.expires_in(at(100_000), at(0)), 50);
        assert_eq!(POLICY.expires_in(at(100_000), at(80_000)), 20);
        assert_eq!(POLICY.expires_in(at(100_000), at(200_000)), 0);
    }
}
