//! What the audit trail records: one [`AuditKind`] per kind of event,
//! written to the store by name and counted in `/metrics` by name. A kind
//! that is not here cannot be recorded.

/// A kind of audited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    Refresh,
    /// A rotated token presented past the grace window got a new successor.
    RefreshReissued,
    RefreshReuseDetected,
    Logout,
    LogoutAll,
    SessionRevoked,
    TokenRevoked,
    PasswordChanged,
    /// A password change with a wrong current password.
    PasswordChangeFailed,
    UserDisabled,
    UserEnabled,
    /// A password reset was asked for (recorded when the request is looked
    /// up, off the request path; without a user when it named none).
    PasswordResetRequested,
    /// A reset link set a new password.
    PasswordReset,
    EmailVerificationRequested,
    EmailVerified,
    EmailChangeRequested,
    /// A link sent to a new address made it the account's.
    EmailChanged,
    /// A mail was given up (refused for good, or no longer useful).
    MailFailed,
    /// A client failed to authenticate (counted only, like throttled logins).
    ClientAuthFailed,
    /// A client was granted a token for itself (client credentials).
    ClientCredentialsGranted,
    /// A user allowed a client that is not first-party its scopes.
    ConsentGranted,
    /// A user withdrew a consent (the client's sessions ended with it).
    ConsentWithdrawn,
    /// An authorization code was redeemed a second time (what the first
    /// redemption got was revoked).
    AuthorizationCodeReplayed,
    /// A second factor was confirmed.
    MfaEnabled,
    /// The user removed their second factor.
    MfaDisabled,
    /// A wrong, replayed or throttled second-factor code, or a wrong
    /// password while enrolling or removing one.
    MfaFailed,
    /// A login's second step used a recovery code.
    MfaRecoveryCodeUsed,
    /// An operator removed a user's second factor (`gatehouse user mfa-reset`).
    MfaReset,
    /// Signing-key events, recorded by the `gatehouse keys` commands.
    KeyRotated,
    KeysReset,
    KeysResealed,
}

impl AuditKind {
    /// The kinds a serving instance records, each counted in
    /// `gatehouse_events_total{event=…}` (the key events happen in admin
    /// commands, not in the server).
    pub const COUNTED: [Self; 30] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::Refresh,
        Self::RefreshReissued,
        Self::RefreshReuseDetected,
        Self::Logout,
        Self::LogoutAll,
        Self::SessionRevoked,
        Self::TokenRevoked,
        Self::PasswordChanged,
        Self::PasswordChangeFailed,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::EmailVerificationRequested,
        Self::EmailVerified,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::MailFailed,
        Self::ClientAuthFailed,
        Self::ClientCredentialsGranted,
        Self::ConsentGranted,
        Self::ConsentWithdrawn,
        Self::AuthorizationCodeReplayed,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::MfaFailed,
        Self::MfaRecoveryCodeUsed,
    ];

    /// The name stored in `audit_events.event` and shown in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::Refresh => "refresh",
            Self::RefreshReissued => "refresh_reissued",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::SessionRevoked => "session_revoked",
            Self::TokenRevoked => "token_revoked",
            Self::PasswordChanged => "password_changed",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::EmailVerificationRequested => "email_verification_requested",
            Self::EmailVerified => "email_verified",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::MailFailed => "mail_failed",
            Self::ClientAuthFailed => "client_auth_failed",
            Self::ClientCredentialsGranted => "client_credentials_granted",
            Self::ConsentGranted => "consent_granted",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::AuthorizationCodeReplayed => "authorization_code_replayed",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaFailed => "mfa_failed",
            Self::MfaRecoveryCodeUsed => "mfa_recovery_code_used",
            Self::MfaReset => "mfa_reset",
            Self::KeyRotated => "key_rotated",
            Self::KeysReset => "keys_reset",
            Self::KeysResealed => "keys_resealed",
        }
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_snake_case_name() {
        let kinds = AuditKind::COUNTED.iter().chain(&[
            AuditKind::KeyRotated,
            AuditKind::KeysReset,
            AuditKind::KeysResealed,
            AuditKind::MfaReset,
        ]);
        let names: Vec<_> = kinds.map(|kind| kind.as_str()).collect();
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert!(
            names
                .iter()
                .all(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
            "{names:?}"
        );
    }
}
