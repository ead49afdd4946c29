//! The platform's probes: liveness (`/health`) and readiness (`/ready`).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: 200 whenever the proxy serves.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 only when the engine answers now; 503 (Azure-shaped, with `Retry-After`)
/// while it loads or is down.
/// With several upstreams, every one must answer.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::NotReady {
            detail: "the proxy is shutting down".into(),
        });
    }
    let mut upstreams = Vec::new();
    for upstream in state.pool.upstreams() {
        let d = upstream.ready().await?;
        upstreams.push(json!({
            "name": upstream.name,
            "engine": d.engine.name(),
            "models": d.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({"status": "ready", "upstreams": upstreams})))
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render_metrics(&state),
    )
}

/// The exposition, with the gauges read at scrape time (queue, replica health) brought up to date.
pub fn render_metrics(state: &AppState) -> String {
    let m = &state.metrics;
    if let Some(limiter) = &state.limiter {
        m.queued
            .set(i64::try_from(limiter.queued()).unwrap_or(i64::MAX));
    }
    for upstream in state.pool.upstreams() {
        for replica in upstream.replicas() {
            m.replica_healthy
                .get_or_create(&crate::metrics::ReplicaLabels {
                    upstream: upstream.name.clone(),
                    replica: replica.base.clone(),
                })
                .set(i64::from(replica.is_healthy()));
        }
    }
    m.encode()
}
