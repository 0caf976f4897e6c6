//! Writing the audit trail.

use super::service::{AuthService, ClientInfo};
use crate::store::AuditEvent;

impl AuthService {
    /// Records `event` about `user_id` / `session_id`, with where it came
    /// from. A failure to record is logged, not passed on: the request that
    /// caused it has already happened.
    pub(super) async fn audit(
        &self,
        event: &str,
        user_id: Option<&str>,
        session_id: Option<&str>,
        client: &ClientInfo,
    ) {
        self.metrics.event(event);
        let record = AuditEvent {
            occurred_at: super::now_millis(),
            event: event.to_owned(),
            user_id: user_id.map(str::to_owned),
            session_id: session_id.map(str::to_owned),
            ip: client.ip.clone(),
            user_agent: client
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(512).collect()),
            detail: None,
        };
        if let Err(err) = self.store.insert_audit_event(&record).await {
            tracing::error!(error = %err, event, "cannot record an audit event");
        }
    }
}
