//! What every request handler shares.

use std::sync::Arc;

use crate::auth::{Accounts, Clients, SecondFactor, Sessions, Signing};
use crate::clock::Clock;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;

/// What every request handler shares: the three services, and what they
/// are built on.
#[derive(Debug, Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub sessions: Arc<Sessions>,
    /// The OAuth client registry.
    pub clients: Arc<Clients>,
    /// Second factors.
    pub mfa: Arc<SecondFactor>,
    pub signing: Arc<Signing>,
    /// The outbox's sender.
    pub mailer: Arc<Mailer>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// Writes the audit events still waiting for the batch writer; after
    /// it, events are written in their requests. Called at shutdown, so
    /// that every grant answered is on record.
    pub async fn flush_audit(&self) {
        self.sessions.audit.flush().await;
    }
}
