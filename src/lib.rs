//! azure-openai-proxy: makes an OpenAI-compatible inference engine answer as an Azure AI
//! endpoint.
//!
//! The request's path through the proxy: `routes` (the route table and thin handlers) →
//! `extract` (query, body, credentials) → `translate` (checks and rewrites, pure) →
//! `upstream` (the pooled client, engine capabilities, relaying the answer). `error` turns
//! every failure into Azure's error body in one place.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod responses_api;
pub mod responses_store;
pub mod routes;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod translate;
pub mod upstream;
pub mod wire;

pub use routes::app;

use config::Config;
use state::AppState;

/// Binds, serves until SIGTERM or Ctrl-C, and drains. Errors name what failed.
pub async fn run(config: Config) -> Result<(), String> {
    let listen = config.listen;
    let drain = config.shutdown_timeout;
    let open = config.api_keys.is_empty();
    let upstreams: Vec<String> = config
        .upstreams
        .iter()
        .flat_map(|u| u.urls.clone())
        .collect();
    let state = AppState::new(config)?;
    let listener = server::listen(listen)
        .map_err(|e| format!("--host/--port: cannot listen on {listen}: {e}"))?;
    if open {
        tracing::warn!(
            "no API key configured: the endpoint is open to anyone who can reach {listen}"
        );
    }
    tracing::info!(%listen, ?upstreams, "azure-openai-proxy listening");
    for upstream in state.pool.upstreams() {
        let upstream = std::sync::Arc::clone(upstream);
        tokio::spawn(async move {
            match upstream.discover(true).await {
                Ok(d) => {
                    let models: Vec<&str> = d.models.iter().map(|m| m.id.as_str()).collect();
                    tracing::info!(upstream = %upstream.name, engine = d.engine.name(), ?models, "engine found");
                }
                Err(e) => {
                    tracing::info!(upstream = %upstream.name, error = %e, "engine not answering yet; will ask again on first use");
                }
            }
        });
    }
    state.pool.spawn_health_checks();
    if let Some(addr) = state.config.metrics_listen {
        let listener = server::listen(addr)
            .map_err(|e| format!("--metrics-port: cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, "metrics listening (no key needed)");
        let metrics_app = axum::Router::new()
            .route("/metrics", axum::routing::get(routes::health::metrics))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, metrics_app).await;
        });
    }
    let limits = server::Limits::from_config(&state.config);
    let draining = std::sync::Arc::clone(&state.draining);
    let shutdown = async move {
        server::shutdown_signal().await;
        // Readiness answers 503 from now on, so balancers stop sending new work.
        draining.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    server::serve(listener, app(state), shutdown, drain, limits).await;
    Ok(())
}
