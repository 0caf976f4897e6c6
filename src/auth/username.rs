//! Usernames: what one may be, and the key that makes two spellings one
//! account.

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// The case-insensitive key of a username: its NFKC form, lower-cased. Two
/// names with the same key are the same account, so `Alice`, `alice` and
/// the full-width `ａｌｉｃｅ` all log in as one user.
pub fn username_key(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    username.nfkc().collect::<String>().to_lowercase()
}

/// A username: 1 to 64 ASCII letters, digits and `. _ - @ +`. ASCII only,
/// so that no two names look alike while differing in code points.
pub fn check_username(username: &str) -> Result<(), String> {
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
        assert!(check_username("alice").is_ok());
        assert!(check_username("elodie.m+test@example.org").is_ok());
        assert!(check_username("élodie").is_err());
        assert!(check_username("").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_username("nul\0byte").is_err());
        assert!(check_username("x' OR '1'='1").is_err());
        assert!(check_username(&"a".repeat(65)).is_err());
    }
}
