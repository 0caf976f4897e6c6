//! The OAuth client registry and client authentication (RFC 6749 §2.3.1):
//! the built-in first-party client, registered public clients (an id
//! only) and confidential ones (an id and a secret, `client_secret_basic`
//! or `client_secret_post`).
//!
//! A secret is 256 random bits, shown once and stored as its SHA-256 (a
//! secret that random needs no slow hash); presented secrets are compared
//! by hash, in constant time. Failures are throttled per client, per
//! client and address, and per address, by the login throttle's counters.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::audit::Audit;
use super::client::{ClientInfo, valid_client_id};
use super::grant::GrantType;
use super::throttle::{Attempt, ThrottlePolicy};
use crate::audit::AuditKind;
use crate::clock::{Clock, UnixMillis};
use crate::error::Error;
use crate::ids::TokenHash;
use crate::store::{ClientRecord, Store};

/// The grant types a client may be registered for: those the token
/// endpoint serves, and `authorization_code` (served by `/oauth/authorize`).
pub const REGISTRABLE_GRANTS: [&str; 4] = [
    "password",
    "refresh_token",
    "authorization_code",
    "client_credentials",
];

/// A client, as the token endpoint sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub confidential: bool,
    pub first_party: bool,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    /// The scopes it may be granted.
    pub scopes: Vec<String>,
    pub disabled: bool,
}

impl Client {
    /// Whether it may use `grant`.
    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grant_types.iter().any(|name| name == grant.as_str())
    }

    fn from_record(record: &ClientRecord) -> Self {
        let list = |text: &str| text.split_whitespace().map(str::to_owned).collect();
        Self {
            id: record.client_id.clone(),
            name: record.name.clone(),
            confidential: record.confidential == 1,
            first_party: record.first_party == 1,
            grant_types: list(&record.grant_types),
            redirect_uris: list(&record.redirect_uris),
            scopes: list(&record.scopes),
            disabled: record.disabled_at.is_some(),
        }
    }
}

/// How a request identified its client.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// The `client_id` (from Basic, or the body).
    pub id: Option<String>,
    pub secret: Option<SecretString>,
}

/// Why a client was not authenticated, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Unknown, disabled, a wrong or missing secret, a secret sent by a
    /// public client: one answer for all (RFC 6749 §5.2 `invalid_client`).
    #[error("client authentication failed")]
    InvalidClient,
    /// Too many failed attempts: retry after this many seconds.
    #[error("too many failed client authentications; retry in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<sqlx::Error> for ClientError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// What `gatehouse client create` registers.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    /// Generated when absent.
    pub client_id: Option<String>,
    pub confidential: bool,
    pub first_party: bool,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
}

/// Why a registration was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("the client id {0:?} is taken")]
    Taken(String),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Clients that authenticated lately: by id and the hash of the secret
/// presented, when and as what.
type Authenticated = quick_cache::sync::Cache<(String, Option<TokenHash>), (UnixMillis, Client)>;

/// The registry.
pub struct Clients {
    pub(crate) store: Store,
    /// The built-in client's id (`--default-client-id`).
    pub(crate) default_client_id: String,
    /// The built-in client's redirect URIs: Swagger UI's receiver page.
    pub(crate) builtin_redirect_uris: Vec<String>,
    /// Every scope Gatehouse grants: `profile` and `--scopes`.
    pub(crate) known_scopes: Vec<String>,
    pub(crate) throttle: ThrottlePolicy,
    pub(crate) audit: Audit,
    pub(crate) clock: Arc<dyn Clock>,
    /// How long an authentication is remembered (`--session-check-ttl`).
    pub(crate) remember_for: std::time::Duration,
    pub(crate) authenticated: Authenticated,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("default_client_id", &self.default_client_id)
            .field("known_scopes", &self.known_scopes)
            .field("remembered", &self.authenticated.len())
            .finish_non_exhaustive()
    }
}

/// Authentications remembered at most.
pub const AUTHENTICATIONS_KEPT: usize = 10_000;

impl Clients {
    /// Every scope Gatehouse grants.
    pub fn known_scopes(&self) -> &[String] {
        &self.known_scopes
    }

    /// Whether `client` is the built-in client.
    pub fn is_builtin(&self, client: &Client) -> bool {
        client.id == self.default_client_id
    }

    /// The built-in client: public, first-party, the password, refresh and
    /// authorization-code grants, every scope.
    pub fn builtin(&self) -> Client {
        Client {
            id: self.default_client_id.clone(),
            name: "Gatehouse".into(),
            confidential: false,
            first_party: true,
            grant_types: ["password", "refresh_token", "authorization_code"]
                .map(str::to_owned)
                .to_vec(),
            redirect_uris: self.builtin_redirect_uris.clone(),
            scopes: self.known_scopes.clone(),
            disabled: false,
        }
    }

    /// The client `client_id` names, unauthenticated (the authorization
    /// endpoint's question: whom is the user asked to trust?); `None` for
    /// an unknown or disabled one.
    pub async fn find_enabled(&self, client_id: &str) -> Result<Option<Client>, Error> {
        if client_id == self.default_client_id {
            return Ok(Some(self.builtin()));
        }
        if !valid_client_id(client_id) {
            return Ok(None);
        }
        let record = self.store.find_client(client_id).await?;
        Ok(record
            .filter(|record| record.disabled_at.is_none())
            .map(|record| Client::from_record(&record)))
    }

    /// The client `credentials` name, authenticated: no id at all is the
    /// built-in client; a registered public client sends its id alone; a
    /// confidential one its id and secret. A client that authenticated is
    /// remembered for the session-check TTL (a resource server introspects
    /// on every request), so a disabled client stops authenticating within
    /// it. Only failures are throttled: a 256-bit secret cannot be guessed,
    /// and counting successes would let anyone who fails often enough lock
    /// the real client out.
    pub async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        from: &ClientInfo,
    ) -> Result<Client, ClientError> {
        let refused = || ClientError::InvalidClient;
        let Some(id) = credentials.id.as_deref().filter(|id| !id.is_empty()) else {
            return match &credentials.secret {
                Some(_) => Err(refused()),
                None => Ok(self.builtin()),
            };
        };
        if id == self.default_client_id && credentials.secret.is_none() {
            return Ok(self.builtin());
        }
        if !valid_client_id(id) {
            return Err(refused());
        }
        let presented = credentials
            .secret
            .as_ref()
            .map(|secret| TokenHash::of(secret.expose_secret()));
        let now = self.clock.now();
        let key = (id.to_owned(), presented.clone());
        if let Some((checked, client)) = self.authenticated.get(&key)
            && now.since(checked) < self.remember_for
        {
            return Ok(client);
        }
        let record = self.store.find_client(id).await?;
        let authenticated = record.as_ref().is_some_and(|record| {
            record.disabled_at.is_none()
                && match (&record.secret_hash, &presented) {
                    (None, None) => true,
                    (Some(stored), Some(presented)) => bool::from(
                        presented
                            .as_str()
                            .as_bytes()
                            .ct_eq(stored.as_str().as_bytes()),
                    ),
                    _ => false,
                }
        });
        match record {
            Some(record) if authenticated => {
                let client = Client::from_record(&record);
                if !self.remember_for.is_zero() {
                    self.authenticated.insert(key, (now, client.clone()));
                }
                Ok(client)
            }
            _ => {
                self.audit.count(AuditKind::ClientAuthFailed);
                let attempt = Attempt::new(&format!("client\0{id}"), from.ip.as_deref());
                match self.throttle.admit(&self.store, &attempt, now).await? {
                    Ok(admitted) => {
                        self.throttle.failed(&self.store, admitted, now).await?;
                        Err(refused())
                    }
                    Err(retry_after) => Err(ClientError::Throttled(retry_after)),
                }
            }
        }
    }

    /// Registers a client; its secret, if confidential (shown once).
    pub async fn register(
        &self,
        new: NewClient,
    ) -> Result<(Client, Option<SecretString>), RegisterClientError> {
        let invalid = |why: String| RegisterClientError::Invalid(why);
        if new.name.trim().is_empty() || new.name.chars().count() > 255 {
            return Err(invalid("--name must be 1 to 255 characters".into()));
        }
        let client_id = new
            .client_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        if client_id.is_empty() || !valid_client_id(&client_id) || client_id.contains(' ') {
            return Err(invalid(
                "--client-id must be 1 to 255 printable characters without spaces".into(),
            ));
        }
        if client_id == self.default_client_id {
            return Err(RegisterClientError::Taken(client_id));
        }
        let mut grant_types = new.grant_types.clone();
        if grant_types.is_empty() {
            grant_types = if new.confidential {
                vec!["client_credentials".into()]
            } else {
                vec!["authorization_code".into(), "refresh_token".into()]
            };
        }
        if let Some(unknown) = grant_types
            .iter()
            .find(|grant| !REGISTRABLE_GRANTS.contains(&grant.as_str()))
        {
            return Err(invalid(format!(
                "unknown grant type {unknown:?}: one of {}",
                REGISTRABLE_GRANTS.join(", ")
            )));
        }
        if !new.confidential && grant_types.iter().any(|g| g == "client_credentials") {
            return Err(invalid(
                "client_credentials needs a confidential client (--confidential)".into(),
            ));
        }
        if let Some(unknown) = new
            .scopes
            .iter()
            .find(|scope| !self.known_scopes.contains(scope))
        {
            return Err(invalid(format!(
                "unknown scope {unknown:?}: register it with --scopes first; known: {}",
                self.known_scopes.join(" ")
            )));
        }
        if let Some(bad) = new
            .redirect_uris
            .iter()
            .find(|uri| !valid_redirect_uri(uri))
        {
            return Err(invalid(format!(
                "redirect URI {bad:?} must be an absolute https:// URI (http:// for loopback), \
                 with no fragment"
            )));
        }
        if dedup(&new.redirect_uris).join(" ").len() > 4000 {
            return Err(invalid(
                "the redirect URIs take more than 4000 characters".into(),
            ));
        }
        let secret = new.confidential.then(crate::auth::random_token);
        let record = ClientRecord {
            client_id: client_id.clone(),
            name: new.name.trim().to_owned(),
            confidential: i64::from(new.confidential),
            first_party: i64::from(new.first_party),
            grant_types: dedup(&grant_types).join(" "),
            redirect_uris: dedup(&new.redirect_uris).join(" "),
            scopes: dedup(&new.scopes).join(" "),
            secret_hash: secret.as_ref().map(|s| TokenHash::of(s.expose_secret())),
            created_at: self.clock.now(),
            disabled_at: None,
        };
        if !self
            .store
            .insert_client(&record)
            .await
            .map_err(Error::from)?
        {
            return Err(RegisterClientError::Taken(client_id));
        }
        Ok((Client::from_record(&record), secret))
    }

    /// Every registered client.
    pub async fn list(&self) -> Result<Vec<Client>, Error> {
        Ok(self
            .store
            .list_clients()
            .await?
            .iter()
            .map(Client::from_record)
            .collect())
    }

    /// Disables a client: it authenticates no more (here at once; on other
    /// instances within the session-check TTL). Whether it exists.
    pub async fn disable(&self, client_id: &str) -> Result<bool, Error> {
        let disabled = self
            .store
            .disable_client(client_id, self.clock.now())
            .await?;
        self.authenticated.clear();
        Ok(disabled)
    }

    /// A new secret for a confidential client (the old one stops working
    /// at once); `None` if there is no such confidential client.
    pub async fn rotate_secret(&self, client_id: &str) -> Result<Option<SecretString>, Error> {
        let secret = crate::auth::random_token();
        let hash = TokenHash::of(secret.expose_secret());
        let rotated = self.store.set_client_secret(client_id, &hash).await?;
        self.authenticated.clear();
        Ok(rotated.then_some(secret))
    }
}

/// A redirect URI a client may register: absolute `https://`, or `http://`
/// on a loopback host (RFC 8252 §7.3), without a fragment.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let loopback = ["http://127.0.0.1", "http://[::1]", "http://localhost"];
    let scheme_ok = uri.starts_with("https://")
        || loopback.iter().any(|prefix| {
            uri.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    scheme_ok && !uri.contains('#') && !uri.chars().any(char::is_whitespace) && uri.len() <= 2048
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(item) {
            seen.push(item.clone());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_http_without_fragments() {
        assert!(valid_redirect_uri("https://app.example.org/callback"));
        assert!(valid_redirect_uri("http://127.0.0.1:8400/cb"));
        assert!(valid_redirect_uri("http://localhost/cb"));
        assert!(!valid_redirect_uri("http://app.example.org/cb"));
        assert!(!valid_redirect_uri("http://localhost.evil.org/cb"));
        assert!(!valid_redirect_uri("https://app.example.org/cb#x"));
        assert!(!valid_redirect_uri("javascript:alert(1)"));
    }
}
