//! The authorization endpoint's decisions (RFC 6749 §4.1, RFC 7636, RFC
//! 9207), apart from HTML: which requests are refused on an error page
//! (an unknown client, a redirect URI not registered: never a redirect),
//! which go back to the client with an error, the login page's browser
//! session, consent, and the codes handed out (`sessions/authorization.rs`).
//! The token endpoint's side is `sessions/code.rs`.

use sha2::{Digest as _, Sha256};

use super::clients::{Client, valid_redirect_uri};

/// How long a code may be redeemed.
pub const CODE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// How long the login page's browser session lasts.
pub const BROWSER_SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// The longest parameter value taken (a `state`, a URI); longer is refused.
pub const MAX_PARAM_CHARS: usize = 2048;

/// An authorization request's parameters, as sent (all optional here:
/// each rule below says which are needed).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
}

/// A request that may proceed to the login and consent pages.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client: Client,
    /// Where the answer goes: the one sent, or the client's only one.
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub code_challenge: String,
    /// `prompt=login`: ask for the password even in a signed-in browser.
    pub prompt_login: bool,
}

/// Why a request does not proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Shown to the user, never redirected: the client or the redirect URI
    /// cannot be trusted with an answer.
    Page(&'static str),
    /// Sent back to the client (RFC 6749 §4.1.2.1).
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: &'static str,
        state: Option<String>,
    },
}

/// Whether `given` is the registered `registered` (RFC 6749 §3.1.2.3:
/// exactly), a loopback URI matching in everything but the port (RFC 8252
/// §7.3).
pub fn redirect_uri_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let without_port = |uri: &str| -> Option<String> {
        let host = ["http://127.0.0.1", "http://[::1]", "http://localhost"]
            .into_iter()
            .find(|host| uri.starts_with(host))?;
        let rest = &uri[host.len()..];
        let rest = match rest.strip_prefix(':') {
            Some(port_on) => {
                let digits = port_on.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return None;
                }
                &port_on[digits..]
            }
            None => rest,
        };
        Some(format!("{host}{rest}"))
    };
    match (without_port(registered), without_port(given)) {
        (Some(registered), Some(given)) => registered == given && valid_redirect_uri(&given),
        _ => false,
    }
}

/// `redirect_uri` with `params` added to its query, each percent-encoded.
pub fn with_query(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut uri = redirect_uri.to_owned();
    for (name, value) in params {
        uri.push(if uri.contains('?') { '&' } else { '?' });
        uri.push_str(name);
        uri.push('=');
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                uri.push(char::from(byte));
            } else {
                uri.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    uri
}

/// The S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A PKCE value's alphabet and length (RFC 7636 §4.1: 43 to 128 of
/// `[A-Za-z0-9-._~]`; an S256 challenge is 43 of them).
pub fn pkce_shaped(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirect_uris_match_on_any_port_and_others_exactly() {
        assert!(redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        assert!(redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51004/cb"
        ));
        assert!(redirect_uri_matches(
            "http://[::1]:80/cb",
            "http://[::1]:9/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/other"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1.evil.example/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:80/cb#x"
        ));
    }

    #[test]
    fn answers_are_added_to_the_query_percent_encoded() {
        assert_eq!(
            with_query(
                "https://a.example/cb?x=1",
                &[("state", "a b&c"), ("iss", "https://i")]
            ),
            "https://a.example/cb?x=1&state=a%20b%26c&iss=https%3A%2F%2Fi"
        );
    }

    #[test]
    fn s256_is_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
