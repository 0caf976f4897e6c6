//! Token introspection (RFC 7662): whether a token is live *now*, as the
//! database says, not as a cache remembers. A revocation made through any
//! instance is seen by the next introspection; a database that does not
//! answer is an error (503), never a guess.

use crate::auth::client::{MAX_ACCESS_TOKEN_BYTES, MAX_REFRESH_TOKEN_BYTES};
use crate::auth::jwt::AnyClaims;
use crate::auth::sessions::{Sessions, TokenHint};
use crate::error::Error;
use crate::ids::TokenHash;

/// What introspection says of a token (RFC 7662 §2.2). Everything but
/// `active` is absent for a token that is not live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    /// The user's id, or for a client's own token its client id.
    pub sub: Option<String>,
    /// A user's token: the user's name.
    pub username: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    pub token_type: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub iss: Option<String>,
    pub aud: Option<String>,
    pub jti: Option<String>,
}

impl Introspection {
    fn inactive() -> Self {
        Self::default()
    }
}

impl Sessions {
    /// Whether `token` (an access or a refresh token; `hint` says which to
    /// try first) is live now, and what it is.
    pub async fn introspect(
        &self,
        token: &str,
        hint: Option<TokenHint>,
    ) -> Result<Introspection, Error> {
        if token.is_empty() || token.len() > MAX_ACCESS_TOKEN_BYTES {
            return Ok(Introspection::inactive());
        }
        let refresh_first = hint == Some(TokenHint::RefreshToken);
        if refresh_first {
            let found = self.introspect_refresh_token(token).await?;
            if found.active {
                return Ok(found);
            }
            return self.introspect_access_token(token).await;
        }
        let found = self.introspect_access_token(token).await?;
        if found.active {
            return Ok(found);
        }
        self.introspect_refresh_token(token).await
    }

    async fn introspect_access_token(&self, token: &str) -> Result<Introspection, Error> {
        // A JWT has two dots; anything else is not one of ours.
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Ok(Introspection::inactive());
        }
        let Ok(claims) = self.signing.verify_any(token).await else {
            return Ok(Introspection::inactive());
        };
        match claims {
            AnyClaims::User(claims) => {
                // The database, not the session cache: a revocation through
                // any instance shows at once.
                let Some(owner) = self.live_reads.owner(&claims.sid).await? else {
                    return Ok(Introspection::inactive());
                };
                if owner.id != claims.sub {
                    return Ok(Introspection::inactive());
                }
                Ok(Introspection {
                    active: true,
                    scope: Some(claims.scope),
                    client_id: claims.client_id,
                    sub: Some(claims.sub.to_string()),
                    username: Some(owner.username),
                    token_type: Some("Bearer".into()),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    nbf: Some(claims.nbf),
                    iss: Some(claims.iss),
                    aud: Some(claims.aud),
                    jti: Some(claims.jti),
                })
            }
            AnyClaims::Client(claims) => {
                let live = self
                    .store
                    .find_client(&claims.client_id)
                    .await?
                    .is_some_and(|client| client.disabled_at.is_none());
                if !live {
                    return Ok(Introspection::inactive());
                }
                Ok(Introspection {
                    active: true,
                    scope: Some(claims.scope),
                    client_id: Some(claims.client_id),
                    sub: Some(claims.sub),
                    username: None,
                    token_type: Some("Bearer".into()),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    nbf: Some(claims.nbf),
                    iss: Some(claims.iss),
                    aud: Some(claims.aud),
                    jti: Some(claims.jti),
                })
            }
        }
    }

    async fn introspect_refresh_token(&self, token: &str) -> Result<Introspection, Error> {
        // Every refresh token Gatehouse issues is 32 bytes in unpadded
        // base64url: anything else is inactive without a database read (a
        // flood of junk costs no queries, and junk is answered in an outage).
        if token.len() > MAX_REFRESH_TOKEN_BYTES || !crate::auth::is_token_shaped(token) {
            return Ok(Introspection::inactive());
        }
        let Some(record) = self.store.find_refresh_token(&TokenHash::of(token)).await? else {
            return Ok(Introspection::inactive());
        };
        let now = self.clock.now();
        let policy = self.rotation.policy();
        let idle_expired = policy
            .idle_ttl
            .is_some_and(|idle| record.token_created_at + idle <= now);
        // Only the family's current token is live: a rotated one is spent
        // (the grace window is for its owner's retries, not for others).
        let live = record.rotated_at.is_none()
            && record.superseded_at.is_none()
            && record.session_revoked_at.is_none()
            && record.session_expires_at > now
            && !idle_expired;
        if !live {
            return Ok(Introspection::inactive());
        }
        let Some(user) = self.store.find_user_by_id(&record.user_id).await? else {
            return Ok(Introspection::inactive());
        };
        if user.disabled_at.is_some() {
            return Ok(Introspection::inactive());
        }
        let exp = match policy.idle_ttl {
            Some(idle) => record
                .session_expires_at
                .as_secs()
                .min((record.token_created_at + idle).as_secs()),
            None => record.session_expires_at.as_secs(),
        };
        Ok(Introspection {
            active: true,
            scope: Some(record.scope),
            client_id: Some(
                record
                    .client_id
                    .unwrap_or_else(|| self.default_client_id.clone()),
            ),
            sub: Some(record.user_id.to_string()),
            username: Some(user.username),
            token_type: Some("refresh_token".into()),
            exp: Some(exp),
            iat: Some(record.token_created_at.as_secs()),
            nbf: None,
            iss: Some(self.signing.tokens().issuer().to_owned()),
            aud: None,
            jti: None,
        })
    }
}
