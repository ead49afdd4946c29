//! Handlers of the Azure OpenAI routes (`/openai/deployments/{deployment}/...`,
//! `/openai/responses`, `/openai/models`, and the v1 routes `/openai/v1/...`): thin shells
//! over `proxy`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::read_body;
use crate::proxy::{self, Surface};
use crate::state::AppState;
use crate::upstream::forward;

/// `POST /openai/responses?api-version=`.
pub async fn responses(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    crate::responses_api::create(&state, Surface::AzureOpenAi, &uri, &headers, body).await
}

/// `POST /openai/v1/responses`.
pub async fn v1_responses(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    crate::responses_api::create(&state, Surface::V1, &uri, &headers, body).await
}

/// `GET /openai/v1/responses/{id}` (and the api-version form).
pub async fn get_response(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::responses_api::get(&state, &id)
}

/// `DELETE /openai/v1/responses/{id}` (and the api-version form).
pub async fn delete_response(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::responses_api::delete(&state, &id)
}

/// `/openai/deployments/{deployment}/audio/transcriptions`: forwarded as sent (multipart)
/// where the engine transcribes (vLLM), otherwise Azure's 400.
pub async fn audio_transcriptions(
    State(state): State<AppState>,
    Path(deployment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    proxy::check_api_version(&state, Surface::AzureOpenAi, &uri)?;
    let target = state.pool.deployment(&deployment).await?;
    let engine = target.upstream.engine().await;
    if !engine.capabilities().transcriptions {
        return Err(unsupported(
            "audio transcription",
            &deployment,
            engine.name(),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let bytes = read_body(
        &headers,
        body,
        state.config.max_body_size,
        state.config.body_read_timeout,
    )
    .await?;
    let answer = target
        .upstream
        .post(
            "/v1/audio/transcriptions",
            bytes,
            content_type,
            Some(&headers),
        )
        .await?;
    Ok(forward::relay(answer))
}

/// Deployment routes for operations no supported engine serves (speech, image generation).
pub async fn unsupported_operation(
    State(state): State<AppState>,
    Path((deployment, operation)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    proxy::check_api_version(&state, Surface::AzureOpenAi, &uri)?;
    let target = state.pool.deployment(&deployment).await?;
    let engine = target.upstream.engine().await;
    Err(unsupported(
        &operation.replace('/', " "),
        &deployment,
        engine.name(),
    ))
}

fn unsupported(operation: &str, deployment: &str, engine: &str) -> ApiError {
    ApiError::OperationNotSupported {
        message: format!(
            "The {operation} operation does not work with the specified model, {deployment}: its engine ({engine}) does not serve it."
        ),
    }
}

/// `GET /openai/models` and `GET /openai/v1/models`: the deployments, in the OpenAI list shape.
pub async fn models(State(state): State<AppState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let surface = if uri.path().starts_with("/openai/v1/") {
        Surface::V1
    } else {
        Surface::AzureOpenAi
    };
    proxy::check_api_version(&state, surface, &uri)?;
    let listed = state.pool.list().await?;
    let data: Vec<Value> = listed
        .iter()
        .map(|l| {
            json!({
                "id": &*l.deployment,
                "object": "model",
                "created": 0,
                "owned_by": l.owned_by.clone().unwrap_or_else(|| "system".into()),
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}
