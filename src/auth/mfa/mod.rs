//! The second factor: TOTP (RFC 6238) with recovery codes. Enrolment and
//! removal (both behind the password), the password steps that wait for a
//! second factor (`mfa_token`), and passing them.
//!
//! - The TOTP secret is sealed with the key-encryption key, bound to its
//!   account; recovery codes and `mfa_token`s are stored as hashes.
//! - A code is accepted once per account: the account's last accepted step
//!   moves on by a conditional update, in the transaction that spends the
//!   `mfa_token`.
//! - Wrong codes are throttled like passwords (per account and address,
//!   per account, per address) and a `mfa_token` takes a few at most.

pub mod recovery_codes;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::accounts::{Accounts, PasswordCheckError};
use super::audit::Audit;
use super::client::ClientInfo;
use super::keys::Kek;
use super::revoker::Revoker;
use super::throttle::{Attempt, ThrottlePolicy};
use super::username::UsernameKey;
use crate::audit::AuditKind;
use crate::clock::{Clock, UnixMillis};
use crate::error::Error;
use crate::ids::{SessionId, TokenHash, UserId};
use crate::store::{ChallengeRecord, NewChallenge, Passed, Proof, SealedTotp, Store, UserRecord};

/// How long an `mfa_token` lasts.
pub const MFA_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long an enrolment waits for its confirmation.
pub const ENROLMENT_TTL: Duration = Duration::from_secs(15 * 60);
/// Wrong codes one `mfa_token` takes before it is spent.
pub const MAX_FAILURES_PER_TOKEN: i64 = 5;

/// The one answer to a forged, expired, used or exhausted `mfa_token`.
pub const BAD_MFA_TOKEN: &str = "the mfa_token is invalid, expired or used";
/// The one answer to a wrong or already used code.
pub const BAD_CODE: &str = "the code is wrong or was already used";

/// What proves the second factor, as the user gives it.
#[derive(Debug, Clone, Copy)]
pub enum Factor<'a> {
    /// A six-digit code of the authenticator app.
    Otp(&'a str),
    /// One of the recovery codes.
    RecoveryCode(&'a str),
}

impl Factor<'_> {
    /// How the user authenticated with it and the password (RFC 8176).
    pub fn amr(self) -> &'static str {
        match self {
            Self::Otp(_) => "pwd otp mfa",
            Self::RecoveryCode(_) => "pwd mfa",
        }
    }
}

/// Why a second factor was not accepted, or that checking failed.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    /// The `mfa_token` is unknown, expired, used, from another client, or
    /// took too many wrong codes.
    #[error("{BAD_MFA_TOKEN}")]
    BadToken,
    #[error("{BAD_CODE}")]
    BadCode,
    /// Too many wrong codes: retry after this many seconds.
    #[error("too many failed attempts; retry in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<sqlx::Error> for FactorError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// Why enrolling, confirming or removing was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The current password was not accepted.
    #[error(transparent)]
    CurrentPassword(#[from] PasswordCheckError),
    #[error("{BAD_CODE}")]
    BadCode,
    #[error("a second factor is already enabled; remove it first")]
    AlreadyEnabled,
    #[error("no enrolment is waiting for confirmation; start one first")]
    NotStarted,
    #[error("no second factor is enabled")]
    NotEnabled,
    /// Too many wrong codes: retry after this many seconds.
    #[error("too many failed attempts; retry in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<sqlx::Error> for EnrolError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// A second factor passed: the account, the password step it completed,
/// and how the user authenticated.
#[derive(Debug)]
pub struct PassedFactor {
    pub user: UserRecord,
    pub challenge: ChallengeRecord,
    pub amr: &'static str,
}

/// The password step a second factor completes: where a login stands
/// before its `mfa_token` is issued.
#[derive(Debug, Clone, Copy)]
pub struct PasswordStep<'a> {
    pub user: &'a UserRecord,
    pub client_id: &'a str,
    pub client_confidential: bool,
    pub scope: &'a str,
}

/// Second factors: enrolling, removing, and passing them at login.
#[derive(Debug)]
pub struct SecondFactor {
    pub(crate) store: Store,
    pub(crate) kek: Kek,
    /// Checks the password before enrolment and removal.
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) throttle: ThrottlePolicy,
    pub(crate) revoker: Revoker,
    pub(crate) audit: Audit,
    pub(crate) clock: Arc<dyn Clock>,
    /// The `issuer` the authenticator app shows beside the account.
    pub(crate) issuer_name: String,
}

impl SecondFactor {
    /// Starts an enrolment for the signed-in `user_id`, after checking the
    /// password: a new secret, kept sealed until a code confirms it.
    pub async fn start_enrolment(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<totp::Enrolment, EnrolError> {
        let user = self
            .accounts
            .check_current_password(user_id, session_id, password, client, AuditKind::MfaFailed)
            .await?;
        if user.mfa_enabled_at.is_some() {
            return Err(EnrolError::AlreadyEnabled);
        }
        let secret = totp::new_secret();
        let sealed = SealedTotp {
            sealed: self.kek.seal_totp(user_id.as_str(), secret.expose_secret()),
            kek_id: self.kek.id().to_owned(),
        };
        let now = self.clock.now();
        self.store
            .start_totp_enrolment(user_id, &sealed, now, now + ENROLMENT_TTL)
            .await?;
        Ok(totp::enrolment(&secret, &self.issuer_name, &user.username))
    }

    /// Confirms the enrolment of `user_id` with a code from the app: from
    /// now on its logins need a second factor. Every other session of the
    /// user ends (whoever had the password before keeps nothing that
    /// predates the second factor). The new recovery codes are returned,
    /// the only time they are seen.
    pub async fn confirm_enrolment(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, EnrolError> {
        let now = self.clock.now();
        let Some(sealed) = self.store.totp_enrolment(user_id, now).await? else {
            let user = self.store.find_user_by_id(user_id).await?;
            return Err(match user {
                Some(user) if user.mfa_enabled_at.is_some() => EnrolError::AlreadyEnabled,
                Some(_) => EnrolError::NotStarted,
                None => PasswordCheckError::UnknownUser.into(),
            });
        };
        let secret = self.open(user_id, &sealed)?;
        let Some(step) = totp::step_of(&secret, code, unix_seconds(now)) else {
            return Err(EnrolError::BadCode);
        };
        let codes = recovery_codes::generate();
        let hashes: Vec<_> = codes
            .iter()
            .map(|code| recovery_codes::hash(code))
            .collect();
        let hashes: Vec<_> = hashes.into_iter().flatten().collect();
        if !self
            .store
            .confirm_totp(user_id, &sealed, step, &hashes, now)
            .await?
        {
            return Err(EnrolError::AlreadyEnabled);
        }
        let revoked = self
            .revoker
            .all_but(user_id, session_id)
            .await
            .map_err(Error::from)?;
        self.revoker.check().account_changed();
        tracing::info!(%user_id, other_sessions_revoked = revoked, "second factor enabled");
        self.audit
            .record(
                AuditKind::MfaEnabled,
                Some(user_id),
                Some(session_id),
                client,
            )
            .await;
        Ok(codes)
    }

    /// Removes the second factor of the signed-in `user_id`, after checking
    /// the password and a code (from the app, or a recovery code).
    pub async fn remove(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        password: SecretString,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), EnrolError> {
        let user = self
            .accounts
            .check_current_password(user_id, session_id, password, client, AuditKind::MfaFailed)
            .await?;
        if user.mfa_enabled_at.is_none() {
            return Err(EnrolError::NotEnabled);
        }
        let factor = if recovery_codes::hash(code).is_some() {
            Factor::RecoveryCode(code)
        } else {
            Factor::Otp(code)
        };
        let attempt = Attempt::second_factor(user_id.as_str(), client.ip.as_deref());
        let now = self.clock.now();
        let admitted = match self.throttle.admit(&self.store, &attempt, now).await? {
            Ok(admitted) => admitted,
            Err(retry_after) => return Err(EnrolError::Throttled(retry_after)),
        };
        let spent = match factor {
            Factor::Otp(code) => {
                let step = self.step_of(&user, code, now)?;
                match step {
                    Some(step) => self.store.claim_totp_step(user_id, step).await?,
                    None => false,
                }
            }
            Factor::RecoveryCode(code) => {
                let hash = recovery_codes::hash(code).expect("checked above");
                self.store.use_recovery_code(user_id, &hash, now).await?
            }
        };
        if !spent {
            self.throttle.failed(&self.store, admitted, now).await?;
            self.audit
                .record(
                    AuditKind::MfaFailed,
                    Some(user_id),
                    Some(session_id),
                    client,
                )
                .await;
            return Err(EnrolError::BadCode);
        }
        self.throttle.succeeded(&self.store, admitted).await?;
        self.store.remove_second_factor(user_id).await?;
        self.revoker.check().account_changed();
        tracing::info!(%user_id, "second factor removed");
        self.audit
            .record(
                AuditKind::MfaDisabled,
                Some(user_id),
                Some(session_id),
                client,
            )
            .await;
        Ok(())
    }

    /// Removes the second factor of the user `username` (an operator's
    /// command, for someone who lost their phone and their recovery
    /// codes), audited: `None` if there is no such user, else whether it
    /// had one. The user's sessions stay.
    pub async fn reset(
        store: &Store,
        audit: &Audit,
        username: &str,
    ) -> Result<Option<bool>, Error> {
        let Some(user) = store.find_user_by_key(&UsernameKey::of(username)).await? else {
            return Ok(None);
        };
        let removed = store.remove_second_factor(&user.id).await?;
        if removed {
            tracing::info!(user_id = %user.id, "second factor reset by an operator");
            audit
                .record(
                    AuditKind::MfaReset,
                    Some(&user.id),
                    None,
                    &ClientInfo::default(),
                )
                .await;
        }
        Ok(Some(removed))
    }

    /// The password step of `step.user` is done and the account has a
    /// second factor: the `mfa_token` that continues it.
    pub async fn challenge(&self, step: PasswordStep<'_>) -> Result<SecretString, Error> {
        let token = crate::auth::random_token();
        let now = self.clock.now();
        self.store
            .insert_challenge(&NewChallenge {
                hash: &TokenHash::of(token.expose_secret()),
                user_id: &step.user.id,
                client_id: step.client_id,
                client_confidential: step.client_confidential,
                scope: step.scope,
                auth_time: now,
                user_epoch: step.user.session_epoch,
                created_at: now,
                expires_at: now + MFA_TOKEN_TTL,
            })
            .await?;
        Ok(token)
    }

    /// Passes the password step `mfa_token` of the client `client_id` with
    /// `factor`, once: the token and the code are spent together.
    pub async fn pass(
        &self,
        mfa_token: &str,
        client_id: &str,
        factor: Factor<'_>,
        client: &ClientInfo,
    ) -> Result<PassedFactor, FactorError> {
        if !crate::auth::is_token_shaped(mfa_token) {
            return Err(FactorError::BadToken);
        }
        let hash = TokenHash::of(mfa_token);
        let now = self.clock.now();
        let challenge = self
            .store
            .live_challenge(&hash, now, MAX_FAILURES_PER_TOKEN)
            .await?;
        let Some(challenge) = challenge.filter(|c| c.client_id == client_id) else {
            return Err(FactorError::BadToken);
        };
        let user_id = &challenge.user_id;
        let attempt = Attempt::second_factor(user_id.as_str(), client.ip.as_deref());
        let admitted = match self.throttle.admit(&self.store, &attempt, now).await? {
            Ok(admitted) => admitted,
            Err(retry_after) => {
                self.audit
                    .record(AuditKind::MfaFailed, Some(user_id), None, client)
                    .await;
                return Err(FactorError::Throttled(retry_after));
            }
        };
        let user = self
            .store
            .find_user_by_id(user_id)
            .await?
            .filter(|user| user.mfa_enabled_at.is_some() && user.disabled_at.is_none());
        let recovery_hash;
        let proof = match (&user, factor) {
            (Some(user), Factor::Otp(code)) => self.step_of(user, code, now)?.map(Proof::TotpStep),
            (Some(_), Factor::RecoveryCode(code)) => {
                recovery_hash = recovery_codes::hash(code);
                recovery_hash.as_ref().map(Proof::RecoveryCode)
            }
            (None, _) => None,
        };
        let passed = match proof {
            Some(proof) => {
                self.store
                    .pass_challenge(&hash, proof, now, MAX_FAILURES_PER_TOKEN)
                    .await?
            }
            None => Passed::ProofSpent,
        };
        match (passed, user) {
            (Passed::Passed(challenge), Some(user)) => {
                // The step is spent: a failure to clear the counters must
                // not turn the login into an error (they expire anyway).
                if let Err(err) = self.throttle.succeeded(&self.store, admitted).await {
                    tracing::warn!(user_id = %user.id, error = %err, "cannot clear the second factor's counters");
                }
                if let Factor::RecoveryCode(_) = factor {
                    let left = self.store.unused_recovery_codes(&user.id).await?;
                    tracing::info!(user_id = %user.id, recovery_codes_left = left, "recovery code used");
                    self.audit
                        .record(AuditKind::MfaRecoveryCodeUsed, Some(&user.id), None, client)
                        .await;
                }
                Ok(PassedFactor {
                    user,
                    challenge,
                    amr: factor.amr(),
                })
            }
            // Spent, expired or worn out meanwhile by a racing attempt: this
            // one stays counted, as it was when admitted.
            (Passed::NoChallenge, _) => Err(FactorError::BadToken),
            _ => {
                self.store.challenge_failed(&hash).await?;
                self.throttle.failed(&self.store, admitted, now).await?;
                self.audit
                    .record(AuditKind::MfaFailed, Some(user_id), None, client)
                    .await;
                Err(FactorError::BadCode)
            }
        }
    }

    /// Re-seals every TOTP secret sealed with `old` under `new` (a KEK
    /// rotation); how many were.
    pub async fn reseal(store: &Store, old: &Kek, new: &Kek) -> Result<u64, Error> {
        let mut resealed = 0;
        for (user_id, sealed, confirmed) in store.totp_secrets_sealed_with(old.id()).await? {
            let Some(secret) = old.open_totp(user_id.as_str(), &sealed) else {
                tracing::warn!(%user_id, "a TOTP secret cannot be unsealed: left as it is");
                continue;
            };
            let before = SealedTotp {
                sealed,
                kek_id: old.id().to_owned(),
            };
            let after = SealedTotp {
                sealed: new.seal_totp(user_id.as_str(), secret.expose_secret()),
                kek_id: new.id().to_owned(),
            };
            if store
                .reseal_totp(&user_id, confirmed, &before, &after)
                .await?
            {
                resealed += 1;
            }
        }
        Ok(resealed)
    }

    /// The step of `code` for `user`'s secret at `now`, if it is a code of it.
    fn step_of(
        &self,
        user: &UserRecord,
        code: &str,
        now: UnixMillis,
    ) -> Result<Option<i64>, Error> {
        let sealed = SealedTotp {
            sealed: user.totp_sealed.clone().unwrap_or_default(),
            kek_id: user.totp_kek_id.clone().unwrap_or_default(),
        };
        let secret = self.open(&user.id, &sealed)?;
        Ok(totp::step_of(&secret, code, unix_seconds(now)))
    }

    /// Unseals a TOTP secret of `user_id`: a failure is the operator's (a
    /// wrong key-encryption key), never the user's.
    fn open(&self, user_id: &UserId, sealed: &SealedTotp) -> Result<totp::TotpSecret, Error> {
        if sealed.kek_id != self.kek.id() {
            return Err(Error::Unsealable(format!(
                "the TOTP secret of user {user_id} is sealed with key-encryption key {}, \
                 not the configured {}",
                sealed.kek_id,
                self.kek.id()
            )));
        }
        self.kek
            .open_totp(user_id.as_str(), &sealed.sealed)
            .ok_or_else(|| {
                Error::Unsealable(format!(
                    "the TOTP secret of user {user_id} cannot be unsealed: it was altered"
                ))
            })
    }
}

/// `now` in whole seconds since the epoch, as TOTP counts.
fn unix_seconds(now: UnixMillis) -> u64 {
    u64::try_from(now.as_secs()).unwrap_or_default()
}
