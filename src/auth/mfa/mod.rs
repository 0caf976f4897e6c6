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

mod enrolment;
mod login;
pub mod recovery_codes;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use super::accounts::{Accounts, PasswordCheckError};
use super::audit::Audit;
use super::keys::Kek;
use super::revoker::Revoker;
use super::throttle::ThrottlePolicy;
use crate::clock::{Clock, UnixMillis};
use crate::error::Error;
use crate::ids::UserId;
use crate::store::{ChallengeRecord, SealedTotp, Store, UserRecord};

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

impl<'a> Factor<'a> {
    /// What the user typed into one field that takes either: a recovery
    /// code if it can be one, else a code of the app.
    pub fn typed(code: &'a str) -> Self {
        if recovery_codes::hash(code).is_some() {
            Self::RecoveryCode(code)
        } else {
            Self::Otp(code)
        }
    }

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
    /// The step of `code` for `user`'s secret at `now`, if it is a code of it.
    pub(super) fn step_of(
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
    pub(super) fn open(
        &self,
        user_id: &UserId,
        sealed: &SealedTotp,
    ) -> Result<totp::TotpSecret, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_takes_an_apps_code_or_a_recovery_code() {
        assert!(matches!(Factor::typed("123456"), Factor::Otp("123456")));
        assert!(matches!(Factor::typed("123 456"), Factor::Otp(_)));
        assert!(matches!(
            Factor::typed("ybndr-fg8ej"),
            Factor::RecoveryCode(_)
        ));
        assert!(matches!(
            Factor::typed("YBNDRFG8EJ"),
            Factor::RecoveryCode(_)
        ));
        assert_eq!(Factor::Otp("1").amr(), "pwd otp mfa");
        assert_eq!(Factor::RecoveryCode("1").amr(), "pwd mfa");
    }
}
