//! Refresh-token rotation: the refresh grant's one transaction.
//!
//! Each attempt locks the presented token's session, decides with the
//! [`RefreshPolicy`], writes the rotation (or the replay, or the revocation)
//! together with its audit record, and commits once; the answer depends on
//! nothing done after that commit. A transaction the database aborts
//! (deadlock, lock-wait timeout, a cluster's certification failure, SQLite
//! busy) is tried again from the start after a jittered backoff, until the
//! grant's deadline; past it the grant is unavailable (503), never
//! `invalid_grant`, which clients take to mean "signed out".

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;

use super::{Decision, RefreshPolicy, Successors};
use crate::audit::AuditKind;
use crate::auth::client::ClientInfo;
use crate::auth::scope::{self, InvalidScope};
use crate::clock::Clock;
use crate::error::Error;
use crate::ids::{SessionId, TokenHash, UserId};
use crate::metrics::Metrics;
use crate::store::{self, AuditEvent, RefreshOutcome, RefreshState, RefreshTokenRecord};
use crate::store::{RefreshWrite, Store};

/// Rotates refresh tokens.
#[derive(Debug)]
pub struct RefreshRotation {
    pub(crate) store: Store,
    pub(crate) successors: Successors,
    pub(crate) policy: RefreshPolicy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    /// How long one refresh may take, retries included (`--db-timeout`).
    pub(crate) deadline: Duration,
}

/// A refresh that was granted.
#[derive(Debug)]
pub struct Refreshed {
    /// The presented token and its session, as decided on.
    pub token: RefreshTokenRecord,
    /// The token that replaces the presented one.
    pub successor: SecretString,
    /// The scope of the new access token.
    pub scope: String,
    /// When it was decided (Unix ms).
    pub now: crate::clock::UnixMillis,
}

/// Why a refresh was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, idle, or its session revoked.
    #[error("the refresh token is invalid, expired or revoked")]
    Invalid,
    /// Reuse of a rotated token: its session has just been revoked.
    #[error("refresh token reuse: the session was revoked")]
    Reused {
        user_id: UserId,
        session_id: SessionId,
    },
    #[error(transparent)]
    Scope(#[from] InvalidScope),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl RefreshRotation {
    /// The lifetimes and windows refresh tokens follow.
    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// The refresh grant's decision for `presented`: rotate it, answer its
    /// successor again, give it a new one, or refuse it (revoking its
    /// family on reuse).
    /// `issued_to`: the registered client that authenticated, which the
    /// token must have been issued to (RFC 6749 §6); `None` for the
    /// built-in client, which checks nothing (sessions from before the
    /// registry name clients of their own).
    pub async fn refresh(
        &self,
        presented: &str,
        requested_scope: Option<&str>,
        issued_to: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Refreshed, RefreshError> {
        let parent_hash = TokenHash::of(presented);
        let legacy = self
            .successors
            .legacy_successor(presented)
            .map(|legacy| TokenHash::of(legacy.expose_secret()));
        let deadline = Instant::now() + self.deadline;
        let mut aborted = 0;
        loop {
            let now = self.clock.now();
            let mut issued = None;
            let plan = |state: &RefreshState| {
                let wrong_client = match issued_to {
                    Some(id) => state.token.client_id.as_deref() != Some(id),
                    // A confidential client's session refreshes only for
                    // that client, authenticated.
                    None => state.token.client_confidential == 1,
                };
                if wrong_client {
                    // Refused like an unknown token, and nothing written.
                    return (RefreshWrite::Nothing, None);
                }
                self.plan(state, presented, requested_scope, client, now, &mut issued)
            };
            let outcome = self
                .store
                .refresh_in_transaction(&parent_hash, legacy.as_ref(), now, deadline, plan)
                .await;
            match outcome {
                Ok(RefreshOutcome::Unknown) => return Err(RefreshError::Invalid),
                Ok(RefreshOutcome::Committed(committed)) => {
                    let (state, write) = *committed;
                    return self.answer(state, write, requested_scope, issued, now);
                }
                Ok(RefreshOutcome::Raced) => {}
                Err(err) if store::is_transient(&err) => {
                    tracing::debug!(error = %err, "refresh transaction aborted; trying again");
                }
                Err(err) => return Err(Error::from(err).into()),
            }
            aborted += 1;
            self.store.count_retry();
            let pause = store::Backoff::TRANSACTION.pause(aborted);
            if Instant::now() + pause >= deadline {
                tracing::warn!(
                    attempts = aborted,
                    "refresh gave up: the database kept aborting"
                );
                return Err(Error::Contended.into());
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// What to write for `state`, and the audit record of it; the token
    /// to answer with goes into `issued`.
    fn plan(
        &self,
        state: &RefreshState,
        presented: &str,
        requested_scope: Option<&str>,
        client: &ClientInfo,
        now: crate::clock::UnixMillis,
        issued: &mut Option<SecretString>,
    ) -> (RefreshWrite, Option<AuditEvent>) {
        if scope::for_refresh(requested_scope, &state.token.scope).is_err() {
            return (RefreshWrite::Nothing, None);
        }
        let (write, event) = match self.policy.decide(state, now) {
            Decision::Rotate => {
                let successor = self.successors.successor(presented, 0);
                let hash = TokenHash::of(successor.expose_secret());
                *issued = Some(successor);
                (RefreshWrite::Rotate { successor: hash }, AuditKind::Refresh)
            }
            Decision::Replay => match self.replayed(presented, state) {
                Some(successor) => {
                    *issued = Some(successor);
                    (RefreshWrite::Replay, AuditKind::Refresh)
                }
                // Not derivable again (the legacy secret is gone): within
                // the grace window, a new one is as good, if the stored
                // one was never used.
                None => self.reissue(presented, state, issued),
            },
            Decision::Reissue => self.reissue(presented, state, issued),
            Decision::Reuse => (RefreshWrite::Revoke, AuditKind::RefreshReuseDetected),
            Decision::Dead => return (RefreshWrite::Nothing, None),
        };
        let (user, session) = (&state.token.user_id, &state.token.session_id);
        let record = client.audit_event(event, Some(user), Some(session), now);
        (write, Some(record))
    }

    /// The successor `presented` was given, if it is the one stored.
    fn replayed(&self, presented: &str, state: &RefreshState) -> Option<SecretString> {
        let successor = self.successors.current(presented, &state.token)?;
        let stored = &state.successor.as_ref()?.token_hash;
        (TokenHash::of(successor.expose_secret()) == *stored).then_some(successor)
    }

    /// A new successor for `presented`, superseding its unused one; reuse
    /// if the stored one was used (or is missing), since two live branches
    /// of one family must never exist.
    fn reissue(
        &self,
        presented: &str,
        state: &RefreshState,
        issued: &mut Option<SecretString>,
    ) -> (RefreshWrite, AuditKind) {
        let Some(current) = state.successor.as_ref().filter(|s| s.is_unused()) else {
            return (RefreshWrite::Revoke, AuditKind::RefreshReuseDetected);
        };
        let successor = self
            .successors
            .successor(presented, state.token.reissues + 1);
        let write = RefreshWrite::Reissue {
            superseded: current.token_hash.clone(),
            successor: TokenHash::of(successor.expose_secret()),
        };
        *issued = Some(successor);
        (write, AuditKind::RefreshReissued)
    }

    /// The grant's answer to what was committed.
    fn answer(
        &self,
        state: RefreshState,
        write: RefreshWrite,
        requested_scope: Option<&str>,
        issued: Option<SecretString>,
        now: crate::clock::UnixMillis,
    ) -> Result<Refreshed, RefreshError> {
        let scope = scope::for_refresh(requested_scope, &state.token.scope)?;
        let token = state.token;
        match (write, issued) {
            (
                write @ (RefreshWrite::Rotate { .. }
                | RefreshWrite::Replay
                | RefreshWrite::Reissue { .. }),
                Some(successor),
            ) => {
                self.metrics.event(AuditKind::Refresh);
                match write {
                    RefreshWrite::Replay => self.metrics.refresh_replayed(),
                    RefreshWrite::Reissue { .. } => {
                        self.metrics.event(AuditKind::RefreshReissued);
                        tracing::info!(
                            session_id = %token.session_id,
                            "a rotated refresh token was presented again past the grace \
                             window: its unused successor is superseded by a new one"
                        );
                    }
                    _ => {}
                }
                Ok(Refreshed {
                    token,
                    successor,
                    scope,
                    now,
                })
            }
            (RefreshWrite::Revoke, _) => {
                self.metrics.event(AuditKind::RefreshReuseDetected);
                tracing::warn!(
                    session_id = %token.session_id,
                    user_id = %token.user_id,
                    "refresh token reuse detected: session revoked"
                );
                Err(RefreshError::Reused {
                    user_id: token.user_id,
                    session_id: token.session_id,
                })
            }
            _ => Err(RefreshError::Invalid),
        }
    }
}
