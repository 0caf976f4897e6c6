//! Writing the audit trail.

use std::sync::Arc;

use super::client::ClientInfo;
use crate::audit::AuditKind;
use crate::clock::Clock;
use crate::ids::{SessionId, UserId};
use crate::metrics::Metrics;
use crate::store::{AuditEvent, Store};

/// Where the services record what happened: the `audit_events` table and
/// the event counters of `/metrics`.
#[derive(Debug, Clone)]
pub struct Audit {
    store: Store,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Events written by a task of their own, many rows per statement, for
    /// what happens at a rate where a commit per event would be the cost
    /// (client credentials grants); `None` outside a runtime's server.
    batched: Option<tokio::sync::mpsc::Sender<AuditEvent>>,
}

/// Events that may wait for the batch writer; past it they are written
/// in the request, as any other.
const BATCH_QUEUE: usize = 10_000;
/// Rows one statement writes at most.
const BATCH_ROWS: usize = 200;

impl Audit {
    pub fn new(store: Store, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            metrics,
            clock,
            batched: None,
        }
    }

    /// [`Audit::new`], with a task (on the current runtime) that writes
    /// [`Audit::record_batched`] events many at a time.
    pub fn with_batch_writer(store: Store, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<AuditEvent>(BATCH_QUEUE);
        let writer = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            while receiver.recv_many(&mut batch, BATCH_ROWS).await > 0 {
                if let Err(err) = writer.insert_audit_events(&batch).await {
                    tracing::error!(error = %err, events = batch.len(),
                        "cannot record a batch of audit events");
                }
                batch.clear();
            }
        });
        Self {
            batched: Some(sender),
            ..Self::new(store, metrics, clock)
        }
    }

    /// Records `event` through the batch writer: it is written within
    /// moments, not in this request (or now, if there is no writer or its
    /// queue is full).
    pub async fn record_batched(&self, kind: AuditKind, event: crate::store::AuditEvent) {
        let event = match &self.batched {
            Some(sender) => match sender.try_send(event) {
                Ok(()) => {
                    self.metrics.event(kind);
                    return;
                }
                Err(tokio::sync::mpsc::error::TrySendError::Full(event))
                | Err(tokio::sync::mpsc::error::TrySendError::Closed(event)) => event,
            },
            None => event,
        };
        self.record_event(kind, event).await;
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
