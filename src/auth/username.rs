//! Usernames: what one may be, and the key that makes two spellings one
//! account.

pub use crate::ids::UsernameKey;

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// A username as registered: 1 to 64 ASCII letters, digits and `. _ - @
/// +`. ASCII only, so that no two names look alike while differing in code
/// points. Shown as registered; unique by its [`UsernameKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// `username` if it may be registered; why not otherwise.
    pub fn parse(username: &str) -> Result<Self, String> {
        check_username(username)?;
        Ok(Self(username.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key that makes two spellings one account.
    pub fn key(&self) -> UsernameKey {
        UsernameKey::of(&self.0)
    }
}

fn check_username(username: &str) -> Result<(), String> {
    let chars = username.chars().count();
    if chars == 0 || chars > MAX_USERNAME_CHARS {
        return Err(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters long"
        ));
    }
    if !username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b))
    {
        return Err("username may contain only ASCII letters, digits and . _ - @ +".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_short_printable_words() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("elodie.m+test@example.org").is_ok());
        assert!(Username::parse("élodie").is_err());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("nul\0byte").is_err());
        assert!(Username::parse("x' OR '1'='1").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
    }
}
