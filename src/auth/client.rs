//! Who is asking for a session, and the audit record of what they did.

use crate::audit::AuditKind;
use crate::store::AuditEvent;

/// Longest user agent kept on a session or an audit record, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;

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
        user_id: Option<&str>,
        session_id: Option<&str>,
        now: i64,
    ) -> AuditEvent {
        AuditEvent {
            occurred_at: now,
            event: event.as_str().to_owned(),
            user_id: user_id.map(str::to_owned),
            session_id: session_id.map(str::to_owned),
            ip: self.ip.clone(),
            user_agent: self.stored_user_agent(),
            detail: None,
        }
    }
}
