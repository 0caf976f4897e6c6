//! Getting back into an account and proving its address: password reset,
//! email verification and email change. Each request here only writes the
//! outbox (the mail, its link and its pacing are `mail`'s); each link is a
//! single-use token the store spends in the transaction that does what it
//! allows.

use secrecy::{ExposeSecret as _, SecretString};

use super::accounts::Accounts;
use super::client::ClientInfo;
use super::email::Email;
use super::password::{self, PolicyViolation};
use crate::audit::AuditKind;
use crate::error::Error;
use crate::ids::{SessionId, TokenHash, UserId};
use crate::store::{MailKind, NewMail};

/// Longest token that could be one Gatehouse mailed (they are 43 bytes).
const MAX_TOKEN_BYTES: usize = 128;

/// What a password reset request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetFor {
    Username(String),
    Email(String),
}

/// Why a mail request was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum MailRequestError {
    /// Too many requests from this client address: retry after this many
    /// seconds.
    #[error("too many requests; retry in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Why a link's token was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown, used, expired or retired: one answer for all.
    #[error("the link is invalid or has expired")]
    InvalidToken,
    #[error(transparent)]
    WeakPassword(#[from] PolicyViolation),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Why a verification mail was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    #[error("the account has no email address")]
    NoEmail,
    #[error("the address is already verified")]
    AlreadyVerified,
    #[error("the account no longer exists")]
    UnknownUser,
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Why an email change was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeEmailError {
    #[error("{0}")]
    InvalidEmail(String),
    /// The current password was not accepted.
    #[error(transparent)]
    CurrentPassword(#[from] super::accounts::PasswordCheckError),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl Accounts {
    /// Asks for a reset link for the account `who` names. The answer is
    /// the same whether or not it exists or has an address, and so is the
    /// work: one outbox row, looked up later by the mailer. Throttled per
    /// client address.
    pub async fn request_password_reset(
        &self,
        who: ResetFor,
        client: &ClientInfo,
    ) -> Result<(), MailRequestError> {
        let now = self.clock.now();
        let admitted = self
            .throttle
            .admit_mail_request(&self.store, client.ip.as_deref(), now)
            .await
            .map_err(Error::from)?;
        if let Err(retry_after) = admitted {
            return Err(MailRequestError::Throttled(retry_after));
        }
        let lookup = match who {
            ResetFor::Username(name) => format!("username:{name}"),
            ResetFor::Email(address) => format!("email:{address}"),
        };
        let mail = NewMail::reset_request(lookup, client.ip.as_deref());
        self.store
            .enqueue_mail(&mail, now)
            .await
            .map_err(Error::from)?;
        self.mail_wake.notify_one();
        Ok(())
    }

    /// Sets a new password with a reset link's token: checks the token and
    /// the policy first (a refused password leaves the token usable), then
    /// spends the token and, in the same transaction, sets the password,
    /// ends every session, retires the account's other reset links and
    /// marks the address that received the link verified. The account's
    /// failed-login counters are cleared.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: SecretString,
        client: &ClientInfo,
    ) -> Result<(), TokenError> {
        let hash = token_hash(token)?;
        let now = self.clock.now();
        let Some(stored) = self
            .store
            .find_account_token(&hash, &[MailKind::PasswordReset], now)
            .await
            .map_err(Error::from)?
        else {
            return Err(TokenError::InvalidToken);
        };
        let Some(user) = self
            .store
            .find_user_by_id(&stored.user_id)
            .await
            .map_err(Error::from)?
        else {
            return Err(TokenError::InvalidToken);
        };
        password::check_policy(
            new_password.expose_secret(),
            &user.username,
            self.min_password_chars,
        )?;
        let password_hash = self
            .passwords
            .hash(new_password)
            .await
            .map_err(Error::from)?;
        let event = client.audit_event(AuditKind::PasswordReset, None, None, now);
        let Some(reset) = self
            .store
            .reset_password(&hash, &password_hash, &event, self.clock.now())
            .await
            .map_err(Error::from)?
        else {
            return Err(TokenError::InvalidToken);
        };
        self.audit.count(AuditKind::PasswordReset);
        for session in &reset.revoked {
            self.revoker.revoked_in_store(session);
        }
        self.revoker.check().account_changed();
        self.throttle
            .forgive(&self.store, &reset.username, client.ip.as_deref())
            .await
            .map_err(Error::from)?;
        tracing::info!(user_id = %reset.user_id, sessions_revoked = reset.revoked.len(),
            "password reset");
        Ok(())
    }

    /// Sends the account's address a verification link (again).
    pub async fn request_verification(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        client: &ClientInfo,
    ) -> Result<(), VerificationError> {
        let Some(user) = self
            .store
            .find_user_by_id(user_id)
            .await
            .map_err(Error::from)?
        else {
            return Err(VerificationError::UnknownUser);
        };
        let Some(email) = &user.email else {
            return Err(VerificationError::NoEmail);
        };
        if user.email_verified_at.is_some() {
            return Err(VerificationError::AlreadyVerified);
        }
        let mail = NewMail::requested(
            MailKind::EmailVerification,
            user_id,
            email,
            client.ip.as_deref(),
        );
        self.store
            .enqueue_mail(&mail, self.clock.now())
            .await
            .map_err(Error::from)?;
        self.mail_wake.notify_one();
        self.audit
            .record(
                AuditKind::EmailVerificationRequested,
                Some(user_id),
                Some(session_id),
                client,
            )
            .await;
        Ok(())
    }

    /// Confirms an address with a verification or email-change link's
    /// token: spends it and, in the same transaction, marks the address
    /// verified or makes the new address the account's (telling the old,
    /// verified one).
    pub async fn confirm_email(&self, token: &str, client: &ClientInfo) -> Result<(), TokenError> {
        let hash = token_hash(token)?;
        let ip = client.ip.clone();
        let notice = |user_id: &UserId, old: &str| {
            NewMail::queued(MailKind::EmailChanged, user_id, old, ip.as_deref())
        };
        let Some(confirmed) = self
            .store
            .confirm_email(&hash, notice, self.clock.now())
            .await
            .map_err(Error::from)?
        else {
            return Err(TokenError::InvalidToken);
        };
        self.revoker.check().account_changed();
        if confirmed.replaced.is_some() {
            self.mail_wake.notify_one();
        }
        let event = if confirmed.changed {
            AuditKind::EmailChanged
        } else {
            AuditKind::EmailVerified
        };
        self.audit
            .record(event, Some(&confirmed.user_id), None, client)
            .await;
        tracing::info!(user_id = %confirmed.user_id, changed = confirmed.changed,
            "email address confirmed");
        Ok(())
    }

    /// Asks to change the account's address to `email`, after checking the
    /// current password (throttled like a login): a link goes to the new
    /// address, and the change happens when it is confirmed.
    pub async fn change_email(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        email: &str,
        current: SecretString,
        client: &ClientInfo,
    ) -> Result<(), ChangeEmailError> {
        let email = Email::parse(email).map_err(ChangeEmailError::InvalidEmail)?;
        self.check_current_password(
            user_id,
            session_id,
            current,
            client,
            AuditKind::PasswordChangeFailed,
        )
        .await?;
        let mail = NewMail::requested(
            MailKind::EmailChange,
            user_id,
            &email.into_string(),
            client.ip.as_deref(),
        );
        self.store
            .enqueue_mail(&mail, self.clock.now())
            .await
            .map_err(Error::from)?;
        self.mail_wake.notify_one();
        self.audit
            .record(
                AuditKind::EmailChangeRequested,
                Some(user_id),
                Some(session_id),
                client,
            )
            .await;
        Ok(())
    }
}

/// The stored form of a link's token; a token no link could carry is
/// refused without a lookup.
fn token_hash(token: &str) -> Result<TokenHash, TokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::InvalidToken);
    }
    Ok(TokenHash::of(token))
}
