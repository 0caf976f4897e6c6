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
    batched: Option<BatchWriter>,
}

/// The way to the batch writer's task.
#[derive(Debug, Clone)]
struct BatchWriter {
    sender: tokio::sync::mpsc::Sender<AuditEvent>,
    /// Told once, at shutdown: write what waits and stop.
    stop: Arc<tokio::sync::Notify>,
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Events that may wait for the batch writer; past it they are written
/// in the request, as any other.
const BATCH_QUEUE: usize = 10_000;
/// Rows one statement writes at most.
const BATCH_ROWS: usize = 200;
/// The batch writer: waits for an event, gathers what else arrives within
/// `window`, writes them in one statement; on `stop`, refuses new
/// events, writes those queued and returns.
async fn write_batches(
    store: Store,
    mut receiver: tokio::sync::mpsc::Receiver<AuditEvent>,
    stop: Arc<tokio::sync::Notify>,
    window: std::time::Duration,
) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut stopping = false;
    loop {
        tokio::select! {
            () = stop.notified(), if !stopping => {
                stopping = true;
                receiver.close();
                continue;
            }
            received = receiver.recv_many(&mut batch, BATCH_ROWS) => {
                if received == 0 {
                    return;
                }
            }
        }
        if !stopping && batch.len() < BATCH_ROWS {
            tokio::select! {
                () = tokio::time::sleep(window) => {}
                () = stop.notified() => {
                    stopping = true;
                    receiver.close();
                }
            }
        }
        while batch.len() < BATCH_ROWS {
            let Ok(event) = receiver.try_recv() else {
                break;
            };
            batch.push(event);
        }
        if let Err(err) = store.insert_audit_events(&batch).await {
            tracing::error!(error = %err, events = batch.len(),
                "cannot record a batch of audit events");
        }
        batch.clear();
    }
}

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
    /// [`Audit::record_batched`] events many at a time: what arrives within
    /// `window` of the first, in one statement (a commit every `window` at
    /// most, whatever the rate of grants).
    pub fn with_batch_writer(
        store: Store,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        window: std::time::Duration,
    ) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel::<AuditEvent>(BATCH_QUEUE);
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(write_batches(store.clone(), receiver, stop.clone(), window));
        Self {
            batched: Some(BatchWriter {
                sender,
                stop,
                task: Arc::new(std::sync::Mutex::new(Some(task))),
            }),
            ..Self::new(store, metrics, clock)
        }
    }

    /// Writes the events still waiting for the batch writer and stops it;
    /// later events are written in their requests. For shutdown: what was
    /// answered is on record before the process exits.
    pub async fn flush(&self) {
        let Some(writer) = &self.batched else { return };
        writer.stop.notify_one();
        let task = writer
            .task
            .lock()
            .map(|mut task| task.take())
            .ok()
            .flatten();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Records `event` through the batch writer: it is written within
    /// moments, not in this request (or now, if there is no writer or its
    /// queue is full).
    pub async fn record_batched(&self, kind: AuditKind, event: crate::store::AuditEvent) {
        let event = match &self.batched {
            Some(writer) => match writer.sender.try_send(event) {
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
