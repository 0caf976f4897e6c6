//! Writing the audit trail.

use super::client::ClientInfo;
use super::service::AuthService;
use crate::audit::AuditKind;

impl AuthService {
    /// Records `event` about `user_id` / `session_id`, with where it came
    /// from. A failure to record is logged, not passed on: the request that
    /// caused it has already happened.
    pub(super) async fn audit(
        &self,
        event: AuditKind,
        user_id: Option<&str>,
        session_id: Option<&str>,
        client: &ClientInfo,
    ) {
        self.metrics.event(event);
        let record = client.audit_event(event, user_id, session_id, self.clock.now_millis());
        if let Err(err) = self.store.insert_audit_event(&record).await {
            tracing::error!(error = %err, %event, "cannot record an audit event");
        }
    }
}
