//! The authorization endpoint's decisions (RFC 6749 §4.1, RFC 7636, RFC
//! 9207), apart from HTML: which requests are refused on an error page
//! (an unknown client, a redirect URI not registered: never a redirect),
//! which go back to the client with an error, the login page's browser
//! session, consent, and the codes handed out. The token endpoint's side
//! is `Sessions::authorization_code_grant`.

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use super::clients::{Client, valid_redirect_uri};
use super::grant::GrantType;
use super::scope;
use super::sessions::Sessions;
use crate::error::Error;
use crate::ids::{TokenHash, UserId};
use crate::store::{BrowserSession, NewCode};

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

impl Sessions {
    /// Checks an authorization request: first the client and the redirect
    /// URI (refused on a page), then the rest (refused by redirect).
    pub async fn check_authorize(
        &self,
        params: &AuthorizeParams,
    ) -> Result<AuthorizeRequest, Refusal> {
        let too_long = [
            &params.response_type,
            &params.client_id,
            &params.redirect_uri,
            &params.scope,
            &params.state,
            &params.code_challenge,
            &params.code_challenge_method,
            &params.prompt,
        ]
        .into_iter()
        .flatten()
        .any(|value| value.chars().count() > MAX_PARAM_CHARS);
        if too_long {
            return Err(Refusal::Page("A parameter of this request is too long."));
        }
        let Some(client_id) = params.client_id.as_deref().filter(|id| !id.is_empty()) else {
            return Err(Refusal::Page(
                "This request names no application (`client_id`).",
            ));
        };
        let client = match self.clients.find_enabled(client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Err(Refusal::Page("This request names an unknown application.")),
            Err(err) => {
                tracing::warn!(error = %err, "an authorization request could not be checked");
                return Err(Refusal::Page(
                    "The service could not check this request just now; try again in a moment.",
                ));
            }
        };
        let redirect_uri = match params.redirect_uri.as_deref() {
            Some(given) => client
                .redirect_uris
                .iter()
                .any(|registered| redirect_uri_matches(registered, given))
                .then(|| given.to_owned()),
            None => match client.redirect_uris.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            },
        };
        let Some(redirect_uri) = redirect_uri else {
            return Err(Refusal::Page(
                "This request's return address (`redirect_uri`) is not one the application \
                 registered.",
            ));
        };
        let state = params.state.clone();
        let refuse = |error: &'static str, description: &'static str| Refusal::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "response_type must be `code`",
            ));
        }
        if !client.may_use(GrantType::AuthorizationCode) {
            return Err(refuse(
                "unauthorized_client",
                "the client may not use the authorization code grant",
            ));
        }
        let Some(code_challenge) = params.code_challenge.clone() else {
            return Err(refuse(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        };
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            ));
        }
        if !pkce_shaped(&code_challenge, 43, 43) {
            return Err(refuse(
                "invalid_request",
                "code_challenge must be the 43-character S256 of the verifier",
            ));
        }
        let prompt_login = match params.prompt.as_deref() {
            None | Some("") => false,
            Some("login") => true,
            Some(_) => return Err(refuse("invalid_request", "prompt may only be `login`")),
        };
        let scope = match scope::for_grant(params.scope.as_deref(), &client.scopes, scope::DEFAULT)
        {
            Ok(scope) => scope,
            Err(_) => {
                return Err(refuse(
                    "invalid_scope",
                    "the client may not ask for that scope",
                ));
            }
        };
        Ok(AuthorizeRequest {
            client,
            redirect_uri,
            scope,
            state,
            code_challenge,
            prompt_login,
        })
    }

    /// The browser session the login page's cookie `cookie` names, if it
    /// is live.
    pub async fn browser_session(&self, cookie: &str) -> Result<Option<BrowserSession>, Error> {
        if !super::is_token_shaped(cookie) {
            return Ok(None);
        }
        Ok(self
            .store
            .live_browser_session(&TokenHash::of(cookie), self.clock.now())
            .await?)
    }

    /// Starts a browser session for `user_id` (who just gave the password
    /// at `user_epoch`); the cookie's value.
    pub async fn open_browser_session(
        &self,
        user_id: &UserId,
        user_epoch: i64,
    ) -> Result<SecretString, Error> {
        let cookie = super::random_token();
        let now = self.clock.now();
        self.store
            .insert_browser_session(
                &TokenHash::of(cookie.expose_secret()),
                user_id,
                user_epoch,
                now,
                now + BROWSER_SESSION_TTL,
            )
            .await?;
        Ok(cookie)
    }

    /// Whether `user_id` must be asked before `request`'s client gets its
    /// scopes: never for a first-party client; otherwise unless an earlier
    /// consent covers every scope asked.
    pub async fn needs_consent(
        &self,
        user_id: &UserId,
        request: &AuthorizeRequest,
    ) -> Result<bool, Error> {
        if request.client.first_party {
            return Ok(false);
        }
        let allowed = self.store.consent(user_id, &request.client.id).await?;
        let covered = allowed.is_some_and(|allowed| {
            request
                .scope
                .split_whitespace()
                .all(|asked| allowed.split_whitespace().any(|given| given == asked))
        });
        Ok(!covered)
    }

    /// Records that `user_id` allowed `request`'s client its scopes (with
    /// those allowed before).
    pub async fn record_consent(
        &self,
        user_id: &UserId,
        request: &AuthorizeRequest,
    ) -> Result<(), Error> {
        let before = self
            .store
            .consent(user_id, &request.client.id)
            .await?
            .unwrap_or_default();
        let mut scopes = before.split_whitespace().collect::<Vec<_>>();
        for asked in request.scope.split_whitespace() {
            if !scopes.contains(&asked) {
                scopes.push(asked);
            }
        }
        self.store
            .put_consent(
                user_id,
                &request.client.id,
                &scopes.join(" "),
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    /// A code for `request`, on behalf of the user `signed_in`; the URI to
    /// send the browser to.
    pub async fn issue_code(
        &self,
        signed_in: &BrowserSession,
        request: &AuthorizeRequest,
    ) -> Result<String, Error> {
        let code = super::random_token();
        let now = self.clock.now();
        self.store
            .insert_authorization_code(&NewCode {
                hash: &TokenHash::of(code.expose_secret()),
                client_id: &request.client.id,
                user_id: &signed_in.user_id,
                redirect_uri: &request.redirect_uri,
                scope: &request.scope,
                code_challenge: &request.code_challenge,
                auth_time: signed_in.auth_time,
                user_epoch: signed_in.user_epoch,
                created_at: now,
                expires_at: now + CODE_TTL,
            })
            .await?;
        let mut params = vec![("code", code.expose_secret())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        params.push(("iss", self.signing.tokens().issuer()));
        Ok(with_query(&request.redirect_uri, &params))
    }
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
