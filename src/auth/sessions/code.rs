//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6): a code
//! from the authorization endpoint, redeemed once by the client it was
//! issued to, with the verifier of its challenge and the same redirect
//! URI, opens a session like a login.

use super::Sessions;
use super::grants::{GrantError, IssuedTokens, Opening};
use crate::auth::authorize::{pkce_shaped, s256};
use crate::auth::client::ClientInfo;
use crate::auth::clients::Client;
use crate::auth::grant::GrantParams;
use crate::ids::{SessionId, TokenHash};
use crate::store::Redemption;

const BAD_CODE: &str = "the authorization code is invalid, expired, already used, or was \
                        issued for another client, redirect URI or verifier";

impl Sessions {
    /// Redeems `params.code` for `client`. A code redeemed a second time is
    /// refused and the session its first redemption opened is revoked
    /// (RFC 6749 §4.1.2): one of the two redeemers is not who it claims.
    pub async fn authorization_code_grant(
        &self,
        client: &Client,
        params: GrantParams,
        from: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        let (Some(code), Some(verifier)) = (params.code, params.code_verifier) else {
            return Err(GrantError::InvalidRequest(
                "`code` and `code_verifier` are required".into(),
            ));
        };
        if !pkce_shaped(&verifier, 43, 128) {
            return Err(GrantError::InvalidRequest(
                "`code_verifier` must be 43 to 128 characters of [A-Za-z0-9-._~]".into(),
            ));
        }
        if !crate::auth::is_token_shaped(&code) {
            return Err(GrantError::InvalidGrant(BAD_CODE));
        }
        let hash = TokenHash::of(&code);
        let session_id = SessionId::generate();
        let now = self.clock.now();
        let record = match self
            .store
            .redeem_authorization_code(&hash, &session_id, now)
            .await?
        {
            Redemption::Redeemed(record) => record,
            Redemption::Replayed(first) => {
                if let Some(first) = &first {
                    self.revoker.session(first).await?;
                }
                self.audit
                    .record(
                        crate::audit::AuditKind::AuthorizationCodeReplayed,
                        None,
                        first.as_ref(),
                        from,
                    )
                    .await;
                tracing::warn!(client_id = %client.id, "an authorization code was redeemed twice");
                return Err(GrantError::InvalidGrant(BAD_CODE));
            }
            Redemption::Unknown => return Err(GrantError::InvalidGrant(BAD_CODE)),
        };
        // Checked after the code is spent: a code tried with the wrong
        // client, URI or verifier is burnt (it may have been stolen).
        let redirect_ok = params.redirect_uri.as_deref() == Some(record.redirect_uri.as_str());
        let verifier_ok = bool::from(subtle::ConstantTimeEq::ct_eq(
            s256(&verifier).as_bytes(),
            record.code_challenge.as_bytes(),
        ));
        if record.client_id != client.id || !redirect_ok || !verifier_ok {
            return Err(GrantError::InvalidGrant(BAD_CODE));
        }
        let Some(user) = self.store.find_user_by_id(&record.user_id).await? else {
            return Err(GrantError::InvalidGrant(BAD_CODE));
        };
        let issued = self
            .open_session_with(
                &user,
                record.scope,
                &client.id,
                client.confidential,
                from,
                Opening {
                    session_id: session_id.clone(),
                    authenticated_at: record.auth_time,
                    user_epoch: record.user_epoch,
                    amr: record.amr.clone(),
                },
            )
            .await?;
        // A replay between the redemption and the session's insert found no
        // session to revoke: this redemption revokes its own. It still
        // answers (one redemption of a code gets an answer, the others
        // none), with tokens that no longer work, as if the replay had come
        // a moment later.
        if self.store.authorization_code_replayed(&hash).await? {
            self.revoker.session(&session_id).await?;
        }
        Ok(issued)
    }
}
