//! Email addresses: what one may be.

/// Longest email address, in bytes (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// An email address as given at registration: one `@` between non-empty
/// parts, no white space or control characters, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// `email` if it is well formed; why not otherwise.
    pub fn parse(email: &str) -> Result<Self, String> {
        check_email(email)?;
        Ok(Self(email.to_owned()))
    }

    /// The address, for the store.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn check_email(email: &str) -> Result<(), String> {
    let well_formed = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if well_formed {
        Ok(())
    } else {
        Err("email must be a valid address of at most 254 bytes".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_one_at_sign_and_no_spaces() {
        assert!(Email::parse("a@example.org").is_ok());
        assert!(Email::parse("a@b@c").is_err());
        assert!(Email::parse("@example.org").is_err());
        assert!(Email::parse("a @example.org").is_err());
        assert!(Email::parse(&format!("{}@x.org", "a".repeat(250))).is_err());
    }
}
