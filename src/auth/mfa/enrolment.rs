//! Enrolling, confirming and removing a second factor (each behind the
//! password), the operator's reset, and re-sealing under a new
//! key-encryption key.

use secrecy::{ExposeSecret as _, SecretString};

use super::{ENROLMENT_TTL, EnrolError, Factor, SecondFactor, recovery_codes, totp, unix_seconds};
use crate::audit::AuditKind;
use crate::auth::accounts::PasswordCheckError;
use crate::auth::audit::Audit;
use crate::auth::client::ClientInfo;
use crate::auth::keys::Kek;
use crate::auth::throttle::Attempt;
use crate::auth::username::UsernameKey;
use crate::error::Error;
use crate::ids::{SessionId, UserId};
use crate::store::{Proof, SealedTotp, Store};

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
        let attempt = Attempt::second_factor(user_id.as_str(), client.ip.as_deref());
        let now = self.clock.now();
        let admitted = match self.throttle.admit(&self.store, &attempt, now).await? {
            Ok(admitted) => admitted,
            Err(retry_after) => return Err(EnrolError::Throttled(retry_after)),
        };
        let spent = match self.proof(&user, Factor::typed(code), now)? {
            Some(Proof::TotpStep(step)) => self.store.claim_totp_step(user_id, step).await?,
            Some(Proof::RecoveryCode(hash)) => {
                self.store.use_recovery_code(user_id, &hash, now).await?
            }
            None => false,
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
}
