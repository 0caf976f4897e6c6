//! A login's second step: the `mfa_token` that a password step for an
//! account with a second factor answers, and passing it with a code, once.

use secrecy::{ExposeSecret as _, SecretString};

use super::{
    Factor, FactorError, MAX_FAILURES_PER_TOKEN, MFA_TOKEN_TTL, PassedFactor, PasswordStep,
    SecondFactor, recovery_codes,
};
use crate::audit::AuditKind;
use crate::auth::client::ClientInfo;
use crate::auth::throttle::Attempt;
use crate::clock::UnixMillis;
use crate::error::Error;
use crate::ids::TokenHash;
use crate::store::{ChallengeRecord, NewChallenge, Passed, Proof, UserRecord};

impl SecondFactor {
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
    /// `factor`, once: the token and the code are spent together. Every
    /// attempt is counted (per account, from this address and from
    /// everywhere) before the code is checked; a wrong one also counts
    /// against the token.
    pub async fn pass(
        &self,
        mfa_token: &str,
        client_id: &str,
        factor: Factor<'_>,
        client: &ClientInfo,
    ) -> Result<PassedFactor, FactorError> {
        let now = self.clock.now();
        let (hash, challenge) = self.live_challenge(mfa_token, client_id, now).await?;
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
        let proof = match &user {
            Some(user) => self.proof(user, factor, now)?,
            None => None,
        };
        let passed = match &proof {
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
                    self.recovery_code_used(&user, client).await;
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

    /// The password step `mfa_token` names, if it can still be passed at
    /// `now` by the client `client_id`: one answer for every other case.
    async fn live_challenge(
        &self,
        mfa_token: &str,
        client_id: &str,
        now: UnixMillis,
    ) -> Result<(TokenHash, ChallengeRecord), FactorError> {
        if !crate::auth::is_token_shaped(mfa_token) {
            return Err(FactorError::BadToken);
        }
        let hash = TokenHash::of(mfa_token);
        let challenge = self
            .store
            .live_challenge(&hash, now, MAX_FAILURES_PER_TOKEN)
            .await?;
        match challenge.filter(|challenge| challenge.client_id == client_id) {
            Some(challenge) => Ok((hash, challenge)),
            None => Err(FactorError::BadToken),
        }
    }

    /// What `factor` would spend for `user` at `now`; `None` if it is no
    /// code of the account's secret at all, or cannot be a recovery code.
    pub(super) fn proof(
        &self,
        user: &UserRecord,
        factor: Factor<'_>,
        now: UnixMillis,
    ) -> Result<Option<Proof>, Error> {
        Ok(match factor {
            Factor::Otp(code) => self.step_of(user, code, now)?.map(Proof::TotpStep),
            Factor::RecoveryCode(code) => recovery_codes::hash(code).map(Proof::RecoveryCode),
        })
    }

    /// Logs and audits a recovery code's use.
    async fn recovery_code_used(&self, user: &UserRecord, client: &ClientInfo) {
        // For the log only: its failure is no reason to refuse the login.
        let left = self.store.unused_recovery_codes(&user.id).await.ok();
        tracing::info!(user_id = %user.id, recovery_codes_left = ?left, "recovery code used");
        self.audit
            .record(AuditKind::MfaRecoveryCodeUsed, Some(&user.id), None, client)
            .await;
    }
}
