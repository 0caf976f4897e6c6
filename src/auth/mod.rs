//! Credentials and tokens, as three services: [`Accounts`] (registration,
//! credentials, password changes, disabling), [`Sessions`] (the grants,
//! refresh, the session check, revocation) and [`Signing`] (access tokens
//! and their key ring). Below them: passwords, JWTs, keys, refresh-token
//! rotation, scopes, the throttle and the username rules.

pub(crate) mod accounts;
mod audit;
pub(crate) mod client;
pub mod clients;
pub(crate) mod email;
pub mod grant;
pub mod jwt;
pub mod keys;
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

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not recoverable: nothing secure can be issued.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}
