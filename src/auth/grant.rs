//! The grant types (RFC 6749 §4, §6): one enum, parsed once, listed by the
//! spec and the metadata alike. Each grant is one method of the service
//! that owns it, called from one dispatcher (`Sessions::grant`).

/// An OAuth2 grant type Gatehouse serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// The resource-owner password grant (RFC 6749 §4.3), for first-party
    /// clients.
    Password,
    /// Refreshing a session (RFC 6749 §6), with rotation.
    RefreshToken,
    /// A confidential client's token for itself (RFC 6749 §4.4).
    ClientCredentials,
    /// A code from the authorization endpoint, with its PKCE verifier
    /// (RFC 6749 §4.1, RFC 7636).
    AuthorizationCode,
    /// The second step of a password grant that needs a second factor: the
    /// `mfa_token` with a TOTP code.
    MfaOtp,
    /// The same with a recovery code.
    MfaRecoveryCode,
}

impl GrantType {
    /// Every grant type, in the order the spec and the metadata list them.
    pub const ALL: [Self; 6] = [
        Self::AuthorizationCode,
        Self::Password,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::MfaOtp,
        Self::MfaRecoveryCode,
    ];

    /// Their `grant_type` names, in the same order.
    pub const NAMES: [&'static str; Self::ALL.len()] = {
        let mut names = [""; Self::ALL.len()];
        let mut at = 0;
        while at < names.len() {
            names[at] = Self::ALL[at].as_str();
            at += 1;
        }
        names
    };

    /// The `grant_type` value that names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::MfaOtp => "urn:gatehouse:grant-type:mfa-otp",
            Self::MfaRecoveryCode => "urn:gatehouse:grant-type:mfa-recovery-code",
        }
    }

    /// The grant a client must be registered for to use this one: the
    /// second-factor grants finish a password grant.
    pub const fn registered_as(self) -> Self {
        match self {
            Self::MfaOtp | Self::MfaRecoveryCode => Self::Password,
            other => other,
        }
    }

    /// The grant type `name` names, if Gatehouse serves it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|grant| grant.as_str() == name)
    }
}

/// How a user who gave the password alone authenticated (RFC 8176 `amr`),
/// kept by a session from its login through every refresh; a second
/// factor adds its own ([`crate::auth::mfa::Factor::amr`]).
pub const PASSWORD_ONLY: &str = "pwd";

/// What a token request carries, whichever grant it names: each grant
/// takes the fields it needs and refuses the request without them.
#[derive(Default)]
pub struct GrantParams {
    pub username: Option<String>,
    pub password: Option<secrecy::SecretString>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub mfa_token: Option<String>,
    pub otp: Option<String>,
    pub recovery_code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_type_parses_from_its_own_name_only() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
        }
        assert_eq!(
            GrantType::NAMES,
            [
                "authorization_code",
                "password",
                "refresh_token",
                "client_credentials",
                "urn:gatehouse:grant-type:mfa-otp",
                "urn:gatehouse:grant-type:mfa-recovery-code",
            ]
        );
        for unknown in ["", "Password", "implicit", "refresh_token "] {
            assert_eq!(GrantType::parse(unknown), None, "{unknown:?}");
        }
    }
}
