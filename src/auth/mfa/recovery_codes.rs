//! Recovery codes: ten single-use codes, shown once, for a lost phone.
//! Each is 50 bits from the OS's CSPRNG, written `xxxxx-xxxxx` in a base32
//! alphabet without look-alikes; stored as the SHA-256 of its normalized
//! form. Guessing is throttled like passwords, so 50 bits are plenty.

use crate::ids::TokenHash;

/// Codes per confirmation.
pub const COUNT: usize = 10;
/// Characters per code (without the dash).
const CHARS: usize = 10;
/// z-base-32's 32 symbols: lower-case letters and digits without `0 l v 2`,
/// the ones most easily misread.
const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Ten new codes, as the user is shown them.
pub fn generate() -> Vec<String> {
    (0..COUNT).map(|_| one()).collect()
}

fn one() -> String {
    let bytes = crate::auth::random_bytes::<CHARS>();
    let symbols: String = bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(byte & 31)]))
        .collect();
    format!("{}-{}", &symbols[..CHARS / 2], &symbols[CHARS / 2..])
}

/// The stored hash of `code` as a user may type it (any case, with or
/// without the dash and spaces); `None` if it cannot be a recovery code.
pub fn hash(code: &str) -> Option<TokenHash> {
    let normalized: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = normalized.len() == CHARS && normalized.bytes().all(|b| ALPHABET.contains(&b));
    valid.then(|| TokenHash::of(&normalized))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_each_hashing_however_they_are_typed() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 11, "{code}");
            let hashed = hash(code).unwrap();
            assert_eq!(hash(&code.to_uppercase()), Some(hashed.clone()));
            assert_eq!(hash(&code.replace('-', " ")), Some(hashed.clone()));
            assert_eq!(hash(&code.replace('-', "")), Some(hashed));
        }
    }

    #[test]
    fn what_cannot_be_a_recovery_code_has_no_hash() {
        for bad in [
            "",
            "123456",
            "ybndr-fg8e",
            "ybndr-fg8ejk",
            "ybndr-fg8e0",
            "ybndr_fg8ej",
        ] {
            assert_eq!(hash(bad), None, "{bad:?}");
        }
    }
}
