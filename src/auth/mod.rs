//! Credentials and tokens, as three services: [`Accounts`] (registration,
//! credentials, password changes, disabling), [`Sessions`] (the grants,
//! refresh, the session check, revocation) and [`Signing`] (access tokens
//! and their key ring). Below them: passwords, JWTs, keys, refresh-token
//! rotation, scopes, the throttle and the username rules.

pub(crate) mod accounts;
mod audit;
pub mod authorize;
pub(crate) mod client;
pub mod clients;
pub(crate) mod email;
pub mod grant;
pub mod jwt;
pub mod keys;
pub mod mfa;
pub mod password;
pub(crate) mod recovery;
pub mod refresh;
mod revoker;
pub(crate) mod scope;
pub(crate) mod session_check;
pub(crate) mod sessions;
mod signing;
pub(crate) mod throttle;
pub(crate) mod username;

pub use accounts::Accounts;
pub use audit::Audit;
pub use clients::Clients;
pub use mfa::SecondFactor;
pub use revoker::Revoker;
pub use sessions::Sessions;
pub use signing::Signing;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

/// 32 bytes (256 bits) from the operating system's CSPRNG, base64url-encoded.
pub fn random_token() -> SecretString {
    SecretString::from(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Whether `text` has the shape of a [`random_token`] (and of a refresh
/// token's successor): 43 characters of unpadded base64url.
pub fn is_token_shaped(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not recoverable: nothing secure can be issued.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    #[test]
    fn random_tokens_are_token_shaped_and_junk_is_not() {
        for _ in 0..100 {
            assert!(super::is_token_shaped(
                super::random_token().expose_secret()
            ));
        }
        let valid = "A".repeat(43);
        assert!(super::is_token_shaped(&valid));
        for junk in [
            "junk",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}+", "A".repeat(42)),
            &format!("{}é", "A".repeat(41)),
        ] {
            assert!(!super::is_token_shaped(junk), "{junk}");
        }
    }
}
