//! The password policy: length, and not a password a guesser tries first.

/// Longest password accepted, in bytes. Longer input is refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("password must be at least {0} characters long")]
    TooShort(usize),
    #[error("password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    TooLong,
    #[error("password must not contain control characters")]
    ControlCharacter,
    #[error("password must not be the username")]
    SameAsUsername,
    #[error("password is too weak: it repeats a single character")]
    SingleCharacter,
    #[error("password is too easy to guess: {0}")]
    Guessable(String),
}

/// How much of a password the guessability estimate looks at (its cost
/// grows with length; a longer password is no dictionary word).
const ESTIMATED_CHARS: usize = 100;

/// Checks a new password against the policy. Passwords are compared and
/// hashed exactly as given: never trimmed, truncated or case-folded.
pub fn check_policy(
    password: &str,
    username: &str,
    min_chars: usize,
) -> Result<(), PolicyViolation> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyViolation::TooLong);
    }
    if password.chars().count() < min_chars {
        return Err(PolicyViolation::TooShort(min_chars));
    }
    if password.chars().any(char::is_control) {
        return Err(PolicyViolation::ControlCharacter);
    }
    if password.to_lowercase() == username.to_lowercase() {
        return Err(PolicyViolation::SameAsUsername);
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Err(PolicyViolation::SingleCharacter);
    }
    // Common and breached passwords, dictionary words, keyboard patterns,
    // dates and the username itself score 0 or 1 ("too guessable").
    let head: String = password.chars().take(ESTIMATED_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&head, &[username]);
    if estimate.score() < zxcvbn::Score::Two {
        let why = estimate
            .feedback()
            .and_then(|feedback| feedback.warning())
            .map_or_else(
                || "it is a common password or pattern".to_owned(),
                |w| w.to_string().to_lowercase(),
            );
        return Err(PolicyViolation::Guessable(why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` ASCII characters with no pattern a guesser would find.
    fn varied(len: usize) -> String {
        (0..)
            .flat_map(|i: u32| {
                crate::ids::TokenHash::of(&i.to_string())
                    .as_str()
                    .as_bytes()
                    .to_vec()
            })
            .take(len)
            .map(char::from)
            .collect()
    }

    #[test]
    fn common_and_guessable_passwords_are_refused_with_the_reason() {
        for weak in [
            "password1",
            "qwertyuiop",
            "iloveyou123",
            "alicealice",
            "12345678",
            "aliceSmith1",
        ] {
            let verdict = check_policy(weak, "aliceSmith", 8);
            assert!(
                matches!(verdict, Err(PolicyViolation::Guessable(_))),
                "{weak}: {verdict:?}"
            );
        }
        assert_eq!(
            check_policy("correct horse battery staple", "alice", 8),
            Ok(())
        );
        assert_eq!(check_policy(&varied(1024), "alice", 8), Ok(()));
    }

    #[test]
    fn the_policy_refuses_short_long_and_trivial_passwords() {
        assert_eq!(
            check_policy("short", "u", 8),
            Err(PolicyViolation::TooShort(8))
        );
        assert_eq!(
            check_policy(&"ab".repeat(513), "u", 8),
            Err(PolicyViolation::TooLong)
        );
        assert_eq!(
            check_policy("abcdefgh\0", "u", 8),
            Err(PolicyViolation::ControlCharacter)
        );
        assert_eq!(
            check_policy("AliceSmith", "alicesmith", 8),
            Err(PolicyViolation::SameAsUsername)
        );
        assert_eq!(
            check_policy("aaaaaaaaaa", "u", 8),
            Err(PolicyViolation::SingleCharacter)
        );
        // Eight characters, not eight bytes; 1024 bytes is still allowed.
        assert_eq!(
            check_policy("ééééééé", "u", 8),
            Err(PolicyViolation::TooShort(8))
        );
        assert_eq!(check_policy(&varied(1024), "u", 8), Ok(()));
        assert_eq!(check_policy("  spaced out  ", "u", 8), Ok(()));
    }
}
