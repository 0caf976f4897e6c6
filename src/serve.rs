//! `gatehouse serve`: listen, run the background tasks (pruning, key
//! reloads), and drain in-flight requests on SIGTERM or SIGINT.

use std::sync::Arc;

use crate::auth::Signing;
use crate::config::Config;
use crate::server;
use crate::startup::{StartError, build_app};
use crate::state::AppState;

/// Serves until SIGTERM or SIGINT, then drains in-flight requests.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let (app, state) = build_app(&config).await?;
    let listener = server::listen(config.listen).map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let local = listener
        .local_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default();
    tracing::info!(
        listen = %local,
        backend = ?state.store.backend(),
        kid = state.signing.signing_key().kid(),
        "gatehouse is serving; Swagger UI at http://{local}/docs"
    );
    let pruner = tokio::spawn(prune_periodically(
        state.clone(),
        config.prune_interval,
        config.revoked_retention,
        config.audit_retention,
    ));
    let reloader = tokio::spawn(reload_keys_periodically(
        state.signing.clone(),
        config.key_reload_interval,
    ));
    if !state.mailer.can_send() {
        tracing::warn!(
            "no --smtp-url or --mail-dir: mails (password resets, verifications) wait in the \
             database until one is configured"
        );
    }
    let mailer = tokio::spawn(state.mailer.clone().run(config.mail_poll_interval));
    let open_files = server::raise_open_file_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| open_files.map_or(1024, |limit| limit.saturating_sub(128).max(16)));
    tracing::info!(
        open_file_limit = open_files,
        max_connections,
        "connection limits"
    );
    let limits = server::ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        max_connections,
        shutdown_timeout: config.shutdown_timeout,
    };
    let metrics = match config.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, &state, &limits)?),
        None => None,
    };
    server::run(listener, app, limits, shutdown_signal())
        .await
        .map_err(StartError::Serve)?;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    pruner.abort();
    reloader.abort();
    mailer.abort();
    // Every grant answered is on record before the connections close.
    state.flush_audit().await;
    state.store.close().await;
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// Serves `/metrics` alone on `addr` (`--metrics-listen`), until aborted.
fn serve_metrics(
    addr: std::net::SocketAddr,
    state: &AppState,
    limits: &server::ConnectionLimits,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let listener = server::listen(addr).map_err(|source| StartError::Listen { addr, source })?;
    tracing::info!(listen = %addr, "metrics are served on their own listener");
    let app = crate::api::metrics_routes(state.clone());
    let limits = server::ConnectionLimits {
        max_connections: 64,
        ..*limits
    };
    Ok(tokio::spawn(async move {
        if let Err(err) = server::run(listener, app, limits, std::future::pending()).await {
            tracing::error!(error = %err, "the metrics listener failed");
        }
    }))
}

/// Deletes dead sessions and stale counters every `interval`, so tables do
/// not grow without bound. Failures are logged and retried next time.
async fn prune_periodically(
    state: AppState,
    interval: std::time::Duration,
    retention: std::time::Duration,
    audit_retention: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    let counters_window = state.accounts.throttle().longest_window();
    loop {
        ticks.tick().await;
        let now = state.clock.now();
        match state.sessions.prune(now, retention, counters_window).await {
            Ok((sessions, counters)) => tracing::info!(sessions, counters, "pruned"),
            Err(err) => tracing::warn!(error = %err, "pruning failed"),
        }
        let audit_before = now - audit_retention;
        match state.store.prune_audit_events(audit_before).await {
            Ok(0) => {}
            Ok(events) => tracing::info!(events, "deleted audit events past their retention"),
            Err(err) => tracing::warn!(error = %err, "pruning audit events failed"),
        }
        match state.store.prune_mail(now - retention).await {
            Ok((0, 0)) => {}
            Ok((mails, tokens)) => {
                tracing::info!(mails, tokens, "deleted settled mails and expired links")
            }
            Err(err) => tracing::warn!(error = %err, "pruning the outbox failed"),
        }
        match state.signing.prune(now).await {
            Ok(0) => {}
            Ok(keys) => tracing::info!(keys, "deleted retired signing keys"),
            Err(err) => tracing::warn!(error = %err, "pruning signing keys failed"),
        }
    }
}

/// Re-reads the signing keys every `interval`, so rotations reach this
/// instance. Failures are logged; the keys in use stay.
async fn reload_keys_periodically(signing: Arc<Signing>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(err) = signing.reload().await {
            tracing::warn!(error = %err, "cannot reload the signing keys");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler cannot fail on Unix");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested: draining in-flight requests");
}
