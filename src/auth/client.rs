//! Who is asking for a session (its client id, user agent and address),
//! the audit record of what they did, and the limits on what clients send.

use crate::audit::AuditKind;
use crate::ids::{SessionId, UserId};
use crate::store::AuditEvent;

/// Longest user agent kept on a session or an audit record, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest `client_id`, in characters.
pub const MAX_CLIENT_ID_CHARS: usize = 255;
/// Longest string that could be a refresh token we issued.
pub const MAX_REFRESH_TOKEN_BYTES: usize = 512;
/// Longest string that could be an access token we issued.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 4096;

/// Who is asking for a session, recorded on it.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub client_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl ClientInfo {
    /// The user agent as stored: at most [`MAX_USER_AGENT_CHARS`].
    pub fn stored_user_agent(&self) -> Option<String> {
        self.user_agent
            .as_ref()
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect())
    }

    /// The audit record of `event` about `user_id` / `session_id` that this
    /// client caused at `now` (ms). Never a secret.
    pub fn audit_event(
        &self,
        event: AuditKind,
        user_id: Option<&UserId>,
        session_id: Option<&SessionId>,
        now: crate::clock::UnixMillis,
    ) -> AuditEvent {
        AuditEvent {
            occurred_at: now,
            event: event.as_str().to_owned(),
            user_id: user_id.cloned(),
            session_id: session_id.cloned(),
            ip: self.ip.clone(),
            user_agent: self.stored_user_agent(),
            detail: None,
        }
    }
}

/// Whether a `client_id` is acceptable: at most 255 printable characters.
pub fn valid_client_id(client_id: &str) -> bool {
    client_id.chars().count() <= MAX_CLIENT_ID_CHARS && !client_id.chars().any(char::is_control)
}
