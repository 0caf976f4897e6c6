//! Accounts: registration, checking a username and password (throttled),
//! password changes, and disabling an account.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::audit::Audit;
use super::client::ClientInfo;
use super::email::Email;
use super::password::{self, Passwords, PolicyViolation};
use super::revoker::Revoker;
use super::throttle::{Attempt, ThrottlePolicy};
use super::username::{MAX_USERNAME_CHARS, Username, UsernameKey};
use crate::audit::AuditKind;
use crate::clock::Clock;
use crate::error::Error;
use crate::ids::{SessionId, UserId};
use crate::store::{InsertUser, MailKind, NewMail, Store, UserRecord};

/// The one message for an unknown user and a wrong password alike.
pub const BAD_CREDENTIALS: &str = "invalid username or password";

/// Why a registration was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    InvalidEmail(String),
    #[error(transparent)]
    WeakPassword(#[from] PolicyViolation),
    #[error("the username is already taken")]
    UsernameTaken,
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Why a login was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefused {
    /// The username and password name no enabled account: one answer for
    /// every reason.
    #[error("{BAD_CREDENTIALS}")]
    BadCredentials,
    /// Too many failed logins: retry after this many seconds.
    #[error("too many failed logins; retry in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<sqlx::Error> for LoginRefused {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// Why a password change was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password was not accepted.
    #[error(transparent)]
    CurrentPassword(#[from] PasswordCheckError),
    #[error(transparent)]
    WeakPassword(#[from] PolicyViolation),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Why the current password of a signed-in user was not accepted, or that
/// checking failed: the one answer of every operation that asks for it
/// (a password change, an email change, a second factor's enrolment).
#[derive(Debug, thiserror::Error)]
pub enum PasswordCheckError {
    #[error("the current password is wrong")]
    WrongPassword,
    /// Too many wrong passwords for the account: retry after this many
    /// seconds (the login throttle's counters).
    #[error("too many failed attempts; retry in {0} s")]
    Throttled(u64),
    #[error("the account no longer exists")]
    UnknownUser,
    #[error(transparent)]
    Internal(#[from] Error),
}

/// The outcome of checking a username and password.
enum Credentials {
    Valid(UserRecord),
    Refused { user_id: Option<UserId> },
}

/// The accounts and their passwords.
#[derive(Debug)]
pub struct Accounts {
    pub(crate) store: Store,
    pub(crate) passwords: Passwords,
    pub(crate) min_password_chars: usize,
    pub(crate) throttle: ThrottlePolicy,
    pub(crate) revoker: Revoker,
    pub(crate) audit: Audit,
    pub(crate) clock: Arc<dyn Clock>,
    /// Signalled when a mail is queued, so the mailer sends it at once.
    pub(crate) mail_wake: Arc<tokio::sync::Notify>,
}

impl Accounts {
    /// The password hasher (its load is on `/metrics`).
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// The shortest password the policy accepts, in characters.
    pub fn min_password_chars(&self) -> usize {
        self.min_password_chars
    }

    /// The failed-login throttle.
    pub fn throttle(&self) -> &ThrottlePolicy {
        &self.throttle
    }

    /// Creates an account.
    pub async fn register(
        &self,
        username: &str,
        password: SecretString,
        email: Option<&str>,
    ) -> Result<UserRecord, RegisterError> {
        let username = Username::parse(username).map_err(RegisterError::InvalidUsername)?;
        let email = email
            .map(Email::parse)
            .transpose()
            .map_err(RegisterError::InvalidEmail)?;
        password::check_policy(
            password.expose_secret(),
            username.as_str(),
            self.min_password_chars,
        )?;
        let user = UserRecord {
            id: UserId::generate(),
            username: username.as_str().to_owned(),
            email: email.map(Email::into_string),
            password_hash: self.passwords.hash(password).await.map_err(Error::from)?,
            created_at: self.clock.now(),
            disabled_at: None,
            session_epoch: 0,
            email_verified_at: None,
            mfa_enabled_at: None,
            totp_sealed: None,
            totp_kek_id: None,
        };
        let key = username.key();
        // The address's verification link is queued with the account.
        let mail = user
            .email
            .as_deref()
            .map(|email| NewMail::requested(MailKind::EmailVerification, &user.id, email, None));
        match self
            .store
            .insert_user(&user, &key, mail.as_ref())
            .await
            .map_err(Error::from)?
        {
            InsertUser::Inserted => {
                if mail.is_some() {
                    self.mail_wake.notify_one();
                }
                Ok(user)
            }
            InsertUser::UsernameTaken => Err(RegisterError::UsernameTaken),
        }
    }

    /// The account a login names, if its password is right, the account
    /// enabled and the login not throttled. Every refusal looks the same.
    pub async fn log_in(
        &self,
        username: &str,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<UserRecord, LoginRefused> {
        let attempt = Attempt::new(username, client.ip.as_deref());
        let now = self.clock.now();
        let admitted = match self.throttle.admit(&self.store, &attempt, now).await? {
            Ok(admitted) => admitted,
            Err(retry_after) => {
                self.audit.count(AuditKind::LoginThrottled);
                return Err(LoginRefused::Throttled(retry_after));
            }
        };
        match self.check_credentials(username, password).await? {
            Credentials::Valid(user) => {
                self.throttle.succeeded(&self.store, admitted).await?;
                Ok(user)
            }
            Credentials::Refused { user_id } => {
                self.throttle.failed(&self.store, admitted, now).await?;
                self.audit
                    .record(AuditKind::LoginFailed, user_id.as_ref(), None, client)
                    .await;
                Err(LoginRefused::BadCredentials)
            }
        }
    }

    /// The user whose password this is, if the account may log in. Every
    /// refusal looks the same to the client, whatever the reason; the
    /// refused account's id (if it exists) is kept for the audit trail.
    async fn check_credentials(
        &self,
        username: &str,
        password: SecretString,
    ) -> Result<Credentials, Error> {
        // Input no account can have is refused without a lookup or a hash:
        // that reveals nothing about which accounts exist.
        if username.chars().count() > MAX_USERNAME_CHARS
            || password.expose_secret().len() > password::MAX_PASSWORD_BYTES
        {
            return Ok(Credentials::Refused { user_id: None });
        }
        // Registered names are ASCII, so no account has a non-ASCII key.
        let key = UsernameKey::of(username);
        if !key.as_str().is_ascii() {
            return Ok(Credentials::Refused { user_id: None });
        }
        let user = self.store.find_user_by_key(&key).await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let password_for_upgrade = password.clone();
        if !self
            .passwords
            .verify(password, stored_hash)
            .await
            .map_err(Error::from)?
        {
            return Ok(Credentials::Refused {
                user_id: user.map(|u| u.id),
            });
        }
        let user = user.expect("a verified password belongs to a stored user");
        // Checked after the hash, so a disabled account answers like any other
        // refusal, in the same time.
        if user.disabled_at.is_some() {
            tracing::info!(user_id = %user.id, "login refused: the account is disabled");
            return Ok(Credentials::Refused {
                user_id: Some(user.id),
            });
        }
        if self.passwords.needs_rehash(&user.password_hash) {
            self.upgrade_hash(&user.id, password_for_upgrade).await;
        }
        Ok(Credentials::Valid(user))
    }

    /// Re-hashes a user's password with the configured parameters. Best
    /// effort: the login that triggered it succeeds whatever happens here.
    async fn upgrade_hash(&self, user_id: &UserId, password: SecretString) {
        let upgraded = match self.passwords.hash(password).await {
            Ok(hash) => self
                .store
                .update_password_hash(user_id, &hash)
                .await
                .map_err(Error::from),
            Err(err) => Err(err.into()),
        };
        match upgraded {
            Ok(()) => {
                tracing::info!(%user_id, "password hash upgraded to the configured parameters")
            }
            Err(err) => tracing::warn!(%user_id, error = %err, "password hash upgrade failed"),
        }
    }

    /// Checks `current`, the password of the signed-in `user_id`, with the
    /// same counters as logins (a stolen access token must not make this a
    /// faster way to guess it); a wrong one is audited as `failure`.
    pub(crate) async fn check_current_password(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        current: SecretString,
        client: &ClientInfo,
        failure: AuditKind,
    ) -> Result<UserRecord, PasswordCheckError> {
        let Some(user) = self
            .store
            .find_user_by_id(user_id)
            .await
            .map_err(Error::from)?
        else {
            return Err(PasswordCheckError::UnknownUser);
        };
        let attempt = Attempt::new(&user.username, client.ip.as_deref());
        let now = self.clock.now();
        let admitted = match self.throttle.admit(&self.store, &attempt, now).await {
            Ok(Ok(admitted)) => admitted,
            Ok(Err(retry_after)) => {
                self.audit.count(AuditKind::LoginThrottled);
                return Err(PasswordCheckError::Throttled(retry_after));
            }
            Err(err) => return Err(Error::from(err).into()),
        };
        let too_long = current.expose_secret().len() > password::MAX_PASSWORD_BYTES;
        let stored = Some(user.password_hash.clone());
        if too_long
            || !self
                .passwords
                .verify(current, stored)
                .await
                .map_err(Error::from)?
        {
            self.throttle
                .failed(&self.store, admitted, now)
                .await
                .map_err(Error::from)?;
            self.audit
                .record(failure, Some(user_id), Some(session_id), client)
                .await;
            return Err(PasswordCheckError::WrongPassword);
        }
        self.throttle
            .succeeded(&self.store, admitted)
            .await
            .map_err(Error::from)?;
        Ok(user)
    }

    /// Changes a user's password after checking the current one, then
    /// revokes every session of the user but `current_sid` (ASVS 6.2.3,
    /// 7.4.3): whoever else knew the old password is logged out. Reset
    /// links still outstanding are retired.
    pub async fn change_password(
        &self,
        user_id: &UserId,
        current_sid: &SessionId,
        current: SecretString,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<(), ChangePasswordError> {
        let user = self
            .check_current_password(
                user_id,
                current_sid,
                current,
                client,
                AuditKind::PasswordChangeFailed,
            )
            .await?;
        password::check_policy(new.expose_secret(), &user.username, self.min_password_chars)?;
        let hash = self.passwords.hash(new).await.map_err(Error::from)?;
        self.store
            .change_password_hash(user_id, &hash, self.clock.now())
            .await
            .map_err(Error::from)?;
        let revoked = self
            .revoker
            .all_but(user_id, current_sid)
            .await
            .map_err(Error::from)?;
        tracing::info!(%user_id, other_sessions_revoked = revoked, "password changed");
        self.audit
            .record(
                AuditKind::PasswordChanged,
                Some(user_id),
                Some(current_sid),
                client,
            )
            .await;
        Ok(())
    }

    /// Disables the account `username` and revokes all its sessions (ASVS
    /// 7.4.2), or re-enables it. `false` if there is no such user.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, Error> {
        let now = self.clock.now();
        let Some(user_id) = self
            .store
            .set_user_disabled(&UsernameKey::of(username), disabled.then_some(now))
            .await?
        else {
            return Ok(false);
        };
        if disabled {
            self.revoker.all_of(&user_id).await?;
        }
        tracing::info!(%user_id, disabled, "account state changed");
        let event = if disabled {
            AuditKind::UserDisabled
        } else {
            AuditKind::UserEnabled
        };
        self.audit
            .record(event, Some(&user_id), None, &ClientInfo::default())
            .await;
        Ok(true)
    }
}
