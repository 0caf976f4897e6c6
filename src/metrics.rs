//! `GET /metrics`: Prometheus text format 0.0.4, by the `prometheus` crate.
//!
//! What the process counts itself lives in a registry: audited events,
//! answers by status class, request latency per operation, transaction
//! retries and refresh replays. What other parts own (the caches' hit
//! counts, hashing load, the key ring, the database pool) is read at each
//! scrape into [`Gauges`]. No label takes a value from user input (an
//! operation is one of the spec's ids), so the output stays small and
//! cannot be inflated by clients.

use prometheus::core::Collector as _;
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::audit::AuditKind;
use crate::store::PoolStats;

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The latency buckets, in seconds: from a cached `GET /users/me` (well
/// under a millisecond) to a login queued behind hashing (seconds).
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The `operation` of answers no operation gave (`/docs`, the spec, 404s).
pub const NO_OPERATION: &str = "none";

/// Process-wide counters and histograms.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    responses: IntCounterVec,
    latency: HistogramVec,
    refresh_replays: IntCounter,
    mails: IntCounterVec,
}

/// What happened to a mail, as `gatehouse_mail_total{outcome=…}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailOutcome {
    /// Written to the outbox, to send.
    Queued,
    /// Accepted by the SMTP server (or written to `--mail-dir`).
    Sent,
    /// Deferred by the server or the network; tried again later.
    Retried,
    /// Refused for good, or no longer useful; given up.
    Failed,
    /// Not sent: no such account, or past the account's hourly allowance.
    Dropped,
}

impl MailOutcome {
    const ALL: [Self; 5] = [
        Self::Queued,
        Self::Sent,
        Self::Retried,
        Self::Failed,
        Self::Dropped,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Retried => "retried",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let events = IntCounterVec::new(
            Opts::new("gatehouse_events_total", "Audited events since start."),
            &["event"],
        )
        .expect("a valid metric");
        // Every kind shows from the start, at 0.
        for kind in AuditKind::COUNTED {
            events.with_label_values(&[kind.as_str()]);
        }
        let responses = IntCounterVec::new(
            Opts::new(
                "gatehouse_http_responses_total",
                "Answered requests by status class.",
            ),
            &["class"],
        )
        .expect("a valid metric");
        for class in CLASSES {
            responses.with_label_values(&[class]);
        }
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_http_request_duration_seconds",
                "Time from a request's arrival to its answer, by operation (the spec's \
                 operationId).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("a valid metric");
        let refresh_replays = IntCounter::new(
            "gatehouse_refresh_replays_total",
            "Refreshes answered with the successor already issued (a retry, a second tab).",
        )
        .expect("a valid metric");
        let mails = IntCounterVec::new(
            Opts::new(
                "gatehouse_mail_total",
                "Mails since start, by what happened to them: queued, sent, retried (deferred \
                 by the server or the network), failed (given up) and dropped (no such \
                 account, or past its hourly allowance).",
            ),
            &["outcome"],
        )
        .expect("a valid metric");
        for outcome in MailOutcome::ALL {
            mails.with_label_values(&[outcome.as_str()]);
        }
        let metrics = Self {
            registry,
            events,
            responses,
            latency,
            refresh_replays,
            mails,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 5] = [
            Box::new(metrics.mails.clone()),
            Box::new(metrics.events.clone()),
            Box::new(metrics.responses.clone()),
            Box::new(metrics.latency.clone()),
            Box::new(metrics.refresh_replays.clone()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("each metric is registered once");
        }
        metrics
    }
}

impl Metrics {
    /// Counts one mail's `outcome`.
    pub fn mail(&self, outcome: MailOutcome) {
        self.mails.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Counts one `event` (those of [`AuditKind::COUNTED`]).
    pub fn event(&self, event: AuditKind) {
        if AuditKind::COUNTED.contains(&event) {
            self.events.with_label_values(&[event.as_str()]).inc();
        }
    }

    /// Counts one refresh answered with a successor already issued.
    pub fn refresh_replayed(&self) {
        self.refresh_replays.inc();
    }

    /// Counts one answer by its status class, and how long `operation`
    /// took to give it.
    pub fn answered(&self, operation: &'static str, status: u16, elapsed: std::time::Duration) {
        if let Some(class) = CLASSES.get(usize::from(status / 100).wrapping_sub(1)) {
            self.responses.with_label_values(&[class]).inc();
        }
        self.latency
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition, with the current gauges.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut families = self.registry.gather();
        let now: [(&str, &str, i64); 6] = [
            (
                "gatehouse_password_hashes_running",
                "Password hashes running or waiting now.",
                count(gauges.hashes_running),
            ),
            (
                "gatehouse_session_cache_entries",
                "Sessions whose liveness is cached.",
                count(gauges.cached_sessions),
            ),
            (
                "gatehouse_signing_keys_published",
                "Public keys in the JWKS (current, previous, next).",
                count(gauges.published_keys),
            ),
            (
                "gatehouse_db_pool_connections",
                "Connections the database pool holds now, in use or idle.",
                count(gauges.pool.open),
            ),
            (
                "gatehouse_db_pool_idle_connections",
                "Connections the database pool holds idle now.",
                count(gauges.pool.idle),
            ),
            (
                "gatehouse_db_pool_max_connections",
                "The most connections the database pool opens (--db-max-connections).",
                count(gauges.pool.max),
            ),
        ];
        for (name, help, value) in now {
            let gauge = IntGauge::new(name, help).expect("a valid metric");
            gauge.set(value);
            families.extend(gauge.collect());
        }
        if let Some(age) = gauges.signing_key_age_secs {
            let gauge = IntGauge::new(
                "gatehouse_signing_key_age_seconds",
                "Since the key new tokens are signed with took over (alert on it to rotate \
                 on schedule).",
            )
            .expect("a valid metric");
            gauge.set(age);
            families.extend(gauge.collect());
        }
        let totals = [
            (
                "gatehouse_db_transaction_retries_total",
                "Transactions the database aborted (deadlock, lock wait, certification failure, \
                 busy) and that were tried again.",
                gauges.transaction_retries,
            ),
            (
                "gatehouse_session_cache_hits_total",
                "Session checks answered from the cache.",
                gauges.session_cache_hits,
            ),
            (
                "gatehouse_session_cache_misses_total",
                "Session checks that asked the database.",
                gauges.session_cache_misses,
            ),
            (
                "gatehouse_verified_token_cache_hits_total",
                "Access tokens presented again after they verified (no signature check).",
                gauges.verified_token_hits,
            ),
            (
                "gatehouse_verified_token_cache_misses_total",
                "Access tokens whose signature was checked.",
                gauges.verified_token_misses,
            ),
        ];
        for (name, help, value) in totals {
            let counter = IntCounter::new(name, help).expect("a valid metric");
            counter.inc_by(value);
            families.extend(counter.collect());
        }
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut text)
            .expect("encoding into memory cannot fail");
        String::from_utf8(text).expect("the text format is UTF-8")
    }
}

fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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
    /// The database pool.
    pub pool: PoolStats,
    /// Transactions the database aborted and that were tried again.
    pub transaction_retries: u64,
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
        let took = std::time::Duration::from_millis(3);
        metrics.answered("getMe", 200, took);
        metrics.answered("getMe", 404, took);
        metrics.answered(NO_OPERATION, 999, took);
        let text = metrics.render(&Gauges {
            hashes_running: 1,
            cached_sessions: 3,
            session_cache_hits: 7,
            session_cache_misses: 2,
            verified_token_hits: 5,
            verified_token_misses: 1,
            published_keys: 2,
            pool: PoolStats {
                open: 4,
                idle: 3,
                max: 10,
            },
            transaction_retries: 1,
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
        assert!(text.contains("gatehouse_db_pool_idle_connections 3\n"));
        assert!(text.contains(
            "gatehouse_http_request_duration_seconds_bucket{operation=\"getMe\",le=\"0.005\"} 2\n"
        ));
        assert!(text.contains(
            "gatehouse_http_request_duration_seconds_bucket{operation=\"getMe\",le=\"0.0025\"} 0\n"
        ));
        assert!(
            text.contains("gatehouse_http_request_duration_seconds_count{operation=\"none\"} 1\n")
        );
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
