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
/// `?upstream=NAME` asks about one upstream only (a proxy fronting several engine fleets can
/// then stay in a Service while one fleet is down); `?any=true` is ready when any one answers.
pub async fn ready(
    State(state): State<AppState>,
    uri: axum::http::Uri,
) -> Result<Json<Value>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::NotReady {
            detail: "the proxy is shutting down".into(),
        });
    }
    let mut only = None;
    let mut any = false;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "upstream" => only = Some(v.into_owned()),
            "any" => any = v == "true" || v == "1",
            _ => {}
        }
    }
    let chosen: Vec<_> = state
        .pool
        .upstreams()
        .iter()
        .filter(|u| only.as_deref().is_none_or(|n| n == &*u.name))
        .collect();
    if chosen.is_empty() {
        return Err(ApiError::NotReady {
            detail: format!("no upstream named '{}'", only.unwrap_or_default()),
        });
    }
    let mut upstreams = Vec::new();
    let mut last_error = None;
    for upstream in chosen {
        let d = match upstream.ready().await {
            Ok(d) => d,
            Err(e) if any => {
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        upstreams.push(json!({
            "name": &*upstream.name,
            "engine": d.engine.name(),
            "models": d.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        }));
    }
    if upstreams.is_empty() {
        if let Some(e) = last_error {
            return Err(e);
        }
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
                    upstream: upstream.name.to_string(),
                    replica: replica.base.clone(),
                })
                .set(i64::from(replica.is_healthy()));
        }
    }
    m.encode()
}
