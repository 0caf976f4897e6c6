//! Health checks for orchestrators and load balancers.

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::failure::{Answer, Failure, Failures, RETRY_AFTER};
use crate::metrics::Gauges;
use crate::state::AppState;

/// A health status.
#[derive(Debug, Object)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The answer of the readiness check.
#[derive(ApiResponse)]
pub enum Ready {
    /// The database answers.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

/// How the readiness check fails.
pub enum NotReady {}

impl Failures for NotReady {
    const ANSWERS: &'static [Answer] = &[Answer::new(
        503,
        "The database does not answer (`unavailable`); check again after \
         `Retry-After` seconds.",
    )
    .with(&[RETRY_AFTER])];
}

/// The metrics answer.
#[derive(ApiResponse)]
pub enum MetricsReply {
    /// Prometheus text format 0.0.4.
    #[oai(status = 200, content_type = "text/plain; version=0.0.4")]
    Ok(PlainText<String>),
}

/// Health and metrics.
#[derive(Default)]
pub struct MetaApi;

#[OpenApi(tag = "ApiTags::Health")]
impl MetaApi {
    /// Liveness
    ///
    /// 200 while the process serves requests; it does not touch the database.
    #[oai(path = "/health/live", method = "get", operation_id = "live")]
    async fn live(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// 200 when the database answers, 503 when it does not.
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, state: Data<&AppState>) -> Result<Ready, Failure<NotReady>> {
        if let Err(err) = state.store.ping().await {
            tracing::warn!(error = %err, "readiness check failed");
            let retry = crate::error::DATABASE_RETRY_SECS;
            return Err(Failure::unavailable("the database does not answer", retry));
        }
        Ok(Ready::Ok(Json(Health {
            status: "ok".into(),
        })))
    }

    /// Prometheus metrics
    ///
    /// Audited events and answered requests since start, request latency
    /// per operation (histograms), and the current password-hashing load,
    /// cache hit counts, signing keys and database pool, in Prometheus text
    /// format. Expose it to your monitoring, not to the public.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsReply {
        let text = render_metrics(&state);
        MetricsReply::Ok(PlainText(text))
    }
}

/// The Prometheus text of `/metrics`, on whichever listener serves it.
pub(crate) fn render_metrics(state: &AppState) -> String {
    let now = state.clock.now();
    let ring = state.signing.tokens().ring();
    let signing = ring.current(now);
    let check = state.sessions.check();
    let sessions = check.stats();
    let tokens = state.signing.tokens().verified_stats();
    state.metrics.render(&Gauges {
        hashes_running: state.accounts.passwords().in_flight(),
        cached_sessions: check.cached(),
        session_cache_hits: sessions.hits,
        session_cache_misses: sessions.misses,
        verified_token_hits: tokens.hits,
        verified_token_misses: tokens.misses,
        published_keys: ring
            .published(now)
            .filter(|key| key.public_key().is_some())
            .count(),
        pool: state.store.pool_stats(),
        transaction_retries: state.store.transactions_retried(),
        signing_key_age_secs: (signing.activates_at > crate::clock::UnixMillis::MIN)
            .then(|| i64::try_from(now.since(signing.activates_at).as_secs()).unwrap_or(i64::MAX)),
    })
}
