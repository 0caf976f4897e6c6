//! Counters for `GET /metrics` (Prometheus text format, version 0.0.4).
//!
//! A fixed set of atomic counters: no labels from user input, so the output
//! stays small and cannot be inflated by clients.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::audit::AuditKind;

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Process-wide counters.
#[derive(Debug)]
pub struct Metrics {
    /// One per [`AuditKind::COUNTED`], in its order.
    events: [AtomicU64; AuditKind::COUNTED.len()],
    responses: [AtomicU64; 5],
    transaction_retries: AtomicU64,
    refresh_replays: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            events: Default::default(),
            responses: Default::default(),
            transaction_retries: AtomicU64::new(0),
            refresh_replays: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one `event` (those of [`AuditKind::COUNTED`]).
    pub fn event(&self, event: AuditKind) {
        if let Some(position) = AuditKind::COUNTED.iter().position(|known| *known == event) {
            self.events[position].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one transaction that the database aborted (deadlock, lock
    /// wait, certification failure, busy) and that was tried again.
    pub fn transaction_retried(&self) {
        self.transaction_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Transactions retried since start (see [`Metrics::transaction_retried`]).
    pub fn transaction_retries(&self) -> u64 {
        self.transaction_retries.load(Ordering::Relaxed)
    }

    /// Counts one refresh answered with a successor already issued.
    pub fn refresh_replayed(&self) {
        self.refresh_replays.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one answered request by its status class.
    pub fn response(&self, status: u16) {
        if let Some(counter) = self
            .responses
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition, with the current gauges.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP gatehouse_events_total Audited events since start.\n");
        out.push_str("# TYPE gatehouse_events_total counter\n");
        for (event, count) in AuditKind::COUNTED.iter().zip(&self.events) {
            let _ = writeln!(
                out,
                "gatehouse_events_total{{event=\"{event}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP gatehouse_http_responses_total Answered requests by status class.\n");
        out.push_str("# TYPE gatehouse_http_responses_total counter\n");
        for (class, count) in CLASSES.iter().zip(&self.responses) {
            let _ = writeln!(
                out,
                "gatehouse_http_responses_total{{class=\"{class}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let counters = [
            (
                "gatehouse_db_transaction_retries_total",
                "Transactions the database aborted (deadlock, lock wait, certification \
                 failure, busy) and that were tried again.",
                &self.transaction_retries,
            ),
            (
                "gatehouse_refresh_replays_total",
                "Refreshes answered with the successor already issued (a retry, a second tab).",
                &self.refresh_replays,
            ),
        ];
        for (name, help, count) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", count.load(Ordering::Relaxed));
        }
        let now = [
            (
                "gatehouse_password_hashes_running",
                "gauge",
                "Password hashes running or waiting now.",
                gauges.hashes_running as u64,
            ),
            (
                "gatehouse_session_cache_entries",
                "gauge",
                "Sessions whose liveness is cached.",
                gauges.cached_sessions as u64,
            ),
            (
                "gatehouse_signing_keys_published",
                "gauge",
                "Public keys in the JWKS (current, previous, next).",
                gauges.published_keys as u64,
            ),
            (
                "gatehouse_session_cache_hits_total",
                "counter",
                "Session checks answered from the cache.",
                gauges.session_cache_hits,
            ),
            (
                "gatehouse_session_cache_misses_total",
                "counter",
                "Session checks that asked the database.",
                gauges.session_cache_misses,
            ),
            (
                "gatehouse_verified_token_cache_hits_total",
                "counter",
                "Access tokens presented again after they verified (no signature check).",
                gauges.verified_token_hits,
            ),
            (
                "gatehouse_verified_token_cache_misses_total",
                "counter",
                "Access tokens whose signature was checked.",
                gauges.verified_token_misses,
            ),
        ];
        for (name, kind, help, value) in now {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(age) = gauges.signing_key_age_secs {
            out.push_str(
                "# HELP gatehouse_signing_key_age_seconds Since the key new tokens are signed \
                 with took over (alert on it to rotate on schedule).\n",
            );
            out.push_str("# TYPE gatehouse_signing_key_age_seconds gauge\n");
            let _ = writeln!(out, "gatehouse_signing_key_age_seconds {age}");
        }
        out
    }
}

/// The values of the gauges at the moment of rendering.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Password hashes running or waiting.
    pub hashes_running: usize,
    /// Sessions whose liveness is cached.
    pub cached_sessions: usize,
    /// Session checks answered from the cache, and from the database.
    pub session_cache_hits: u64,
    pub session_cache_misses: u64,
    /// Access tokens verified from the cache, and by their signature.
    pub verified_token_hits: u64,
    pub verified_token_misses: u64,
    /// Public keys in the JWKS.
    pub published_keys: usize,
    /// Since the current signing key took over; `None` for a fixed key.
    pub signing_key_age_secs: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.event(AuditKind::LoginSucceeded);
        metrics.event(AuditKind::LoginSucceeded);
        metrics.event(AuditKind::KeyRotated);
        metrics.response(200);
        metrics.response(404);
        metrics.response(999);
        metrics.transaction_retried();
        let text = metrics.render(&Gauges {
            hashes_running: 1,
            cached_sessions: 3,
            session_cache_hits: 7,
            session_cache_misses: 2,
            verified_token_hits: 5,
            verified_token_misses: 1,
            published_keys: 2,
            signing_key_age_secs: Some(60),
        });
        assert!(text.contains("gatehouse_events_total{event=\"login_succeeded\"} 2\n"));
        assert!(text.contains("gatehouse_events_total{event=\"login_failed\"} 0\n"));
        assert!(text.contains("gatehouse_http_responses_total{class=\"2xx\"} 1\n"));
        assert!(text.contains("gatehouse_http_responses_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("gatehouse_password_hashes_running 1\n"));
        assert!(text.contains("gatehouse_db_transaction_retries_total 1\n"));
        assert!(text.contains("gatehouse_refresh_replays_total 0\n"));
        assert!(text.contains("gatehouse_signing_keys_published 2\n"));
        assert!(text.contains("gatehouse_session_cache_hits_total 7\n"));
        assert!(text.contains("gatehouse_session_cache_misses_total 2\n"));
        assert!(text.contains("gatehouse_verified_token_cache_hits_total 5\n"));
        assert!(text.contains("gatehouse_verified_token_cache_misses_total 1\n"));
        assert!(text.contains("# TYPE gatehouse_session_cache_entries gauge\n"));
        assert!(text.contains("gatehouse_signing_key_age_seconds 60\n"));
        let fixed = metrics.render(&Gauges::default());
        assert!(!fixed.contains("gatehouse_signing_key_age_seconds"));
        assert!(!text.contains("key_rotated"), "not a server's event");
    }
}

/// Answers from the cache and from the database since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}
