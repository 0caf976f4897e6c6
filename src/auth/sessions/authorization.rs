//! The authorization endpoint's side of the code flow: checking a request
//! (the rules are `auth/authorize.rs`'s), the login page's browser
//! session, consent, and the codes handed out.

use secrecy::{ExposeSecret as _, SecretString};

use super::Sessions;
use crate::audit::AuditKind;
use crate::auth::authorize::{
    AuthorizeParams, AuthorizeRequest, BROWSER_SESSION_TTL, CODE_TTL, MAX_PARAM_CHARS, Refusal,
    pkce_shaped, redirect_uri_matches, with_query,
};
use crate::auth::client::ClientInfo;
use crate::auth::grant::GrantType;
use crate::auth::scope;
use crate::error::Error;
use crate::ids::{TokenHash, UserId};
use crate::store::{BrowserSession, ConsentRecord, NewCode};

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
        if !crate::auth::is_token_shaped(cookie) {
            return Ok(None);
        }
        Ok(self
            .store
            .live_browser_session(&TokenHash::of(cookie), self.clock.now())
            .await?)
    }

    /// Starts a browser session for the user who just signed in at
    /// `user_epoch`, as `amr` says; the cookie's value.
    pub async fn open_browser_session(
        &self,
        user_id: &UserId,
        user_epoch: i64,
        amr: &str,
    ) -> Result<SecretString, Error> {
        let cookie = crate::auth::random_token();
        let now = self.clock.now();
        let signed_in = BrowserSession {
            user_id: user_id.clone(),
            auth_time: now,
            user_epoch,
            amr: amr.to_owned(),
        };
        self.store
            .insert_browser_session(
                &TokenHash::of(cookie.expose_secret()),
                &signed_in,
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
        from: &ClientInfo,
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
        self.audit
            .record(AuditKind::ConsentGranted, Some(user_id), None, from)
            .await;
        Ok(())
    }

    /// The consents `user_id` gave.
    pub async fn consents_of(&self, user_id: &UserId) -> Result<Vec<ConsentRecord>, Error> {
        Ok(self.store.consents_of(user_id).await?)
    }

    /// Withdraws `user_id`'s consent to `client_id`, ending every session
    /// that client holds for the user; `false` if there was none.
    pub async fn withdraw_consent(
        &self,
        user_id: &UserId,
        client_id: &str,
        from: &ClientInfo,
    ) -> Result<bool, Error> {
        let Some(ended) = self
            .store
            .withdraw_consent(user_id, client_id, self.clock.now())
            .await?
        else {
            return Ok(false);
        };
        ended
            .iter()
            .for_each(|session| self.revoker.revoked_in_store(session));
        self.audit
            .record(AuditKind::ConsentWithdrawn, Some(user_id), None, from)
            .await;
        Ok(true)
    }

    /// A code for `request`, on behalf of the user `signed_in`; the URI to
    /// send the browser to.
    pub async fn issue_code(
        &self,
        signed_in: &BrowserSession,
        request: &AuthorizeRequest,
    ) -> Result<String, Error> {
        let code = crate::auth::random_token();
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
                amr: &signed_in.amr,
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
