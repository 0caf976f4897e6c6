//! Writing the audit trail.

use std::sync::Arc;

use super::client::ClientInfo;
use crate::audit::AuditKind;
use crate::clock::Clock;
use crate::ids::{SessionId, UserId};
use crate::metrics::Metrics;
use crate::store::Store;

/// Where the services record what happened: the `audit_events` table and
/// the event counters of `/metrics`.
#[derive(Debug, Clone)]
pub struct Audit {
    store: Store,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl Audit {
    pub fn new(store: Store, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            metrics,
            clock,
        }
    }

    /// Counts `event` in `/metrics` without writing a row: for what can
    /// happen at an attacker's rate (attempts refused while throttled),
    /// which would otherwise grow the table at that rate.
    pub fn count(&self, event: AuditKind) {
        self.metrics.event(event);
    }

    /// Records an event already written out (with a `detail`, say).
    pub async fn record_event(&self, kind: AuditKind, event: crate::store::AuditEvent) {
        self.metrics.event(kind);
        if let Err(err) = self.store.insert_audit_event(&event).await {
            tracing::error!(error = %err, event = %kind, "cannot record an audit event");
        }
    }

    /// Records `event` about `user_id` / `session_id`, with where it came
    /// from. A failure to record is logged, not passed on: the request that
    /// caused it has already happened.
    pub async fn record(
        &self,
        event: AuditKind,
        user_id: Option<&UserId>,
        session_id: Option<&SessionId>,
        client: &ClientInfo,
    ) {
        self.metrics.event(event);
        let record = client.audit_event(event, user_id, session_id, self.clock.now());
        if let Err(err) = self.store.insert_audit_event(&record).await {
            tracing::error!(error = %err, %event, "cannot record an audit event");
        }
    }
}
