//! The route table. Every Model Inference route is served at the root and under the `/models/`
//! and `/api/models/` prefixes that Azure AI Foundry endpoints use (the SDK appends its route to
//! whatever endpoint it is given).

pub mod azure_openai;
pub mod health;
pub mod model_inference;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::extract::check_key;
use crate::state::AppState;

const PREFIXES: &[&str] = &["", "/models", "/api/models"];

/// The whole application: routes, Azure-shaped fallbacks, and the layers around them.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics));
    for prefix in PREFIXES {
        router = router
            .route(
                &format!("{prefix}/chat/completions"),
                post(model_inference::chat_completions),
            )
            .route(
                &format!("{prefix}/embeddings"),
                post(model_inference::embeddings),
            )
            .route(
                &format!("{prefix}/images/embeddings"),
                post(model_inference::image_embeddings),
            )
            .route(&format!("{prefix}/info"), get(model_inference::info));
    }
    router = router
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_openai::chat_completions),
        )
        .route(
            "/openai/deployments/{deployment}/completions",
            post(azure_openai::completions),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_openai::embeddings),
        )
        .route(
            "/openai/deployments/{deployment}/audio/transcriptions",
            post(azure_openai::audio_transcriptions),
        )
        .route(
            "/openai/deployments/{deployment}/{*operation}",
            post(azure_openai::unsupported_operation),
        )
        .route("/openai/responses", post(azure_openai::responses))
        .route(
            "/openai/responses/{id}",
            get(azure_openai::get_response).delete(azure_openai::delete_response),
        )
        .route(
            "/openai/v1/responses/{id}",
            get(azure_openai::get_response).delete(azure_openai::delete_response),
        )
        .route("/openai/models", get(azure_openai::models))
        .route(
            "/openai/v1/chat/completions",
            post(azure_openai::v1_chat_completions),
        )
        .route("/openai/v1/completions", post(azure_openai::v1_completions))
        .route("/openai/v1/embeddings", post(azure_openai::v1_embeddings))
        .route("/openai/v1/responses", post(azure_openai::v1_responses))
        .route("/openai/v1/models", get(azure_openai::models));
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed {
                method: method.to_string(),
            }
        })
        .layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// What every request passes before its handler, in one layer (one boxed future, not three):
/// the observer (request id, metrics, log line) sees every request, including the ones auth
/// refuses; auth runs before a request can take a concurrency slot, and both before any
/// handler touches the body or the engine.
async fn front(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let state = &state;
    crate::telemetry::observe(state, request, |request| async move {
        if let Err(e) = check_key(state, &request) {
            return e.into_response();
        }
        crate::limits::limit(state, request, next).await
    })
    .await
}
