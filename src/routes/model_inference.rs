//! Handlers of the Azure AI Model Inference routes: read the request, let `translate` check and
//! rewrite it, forward it, relay the answer.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;

use crate::error::ApiError;
use crate::extract::{body_bytes, AzureQuery};
use crate::state::AppState;
use crate::translate::body::JsonBody;
use crate::translate::embeddings::{self, Encoding};
use crate::translate::extra_params::ExtraParams;
use crate::translate::info::{self, ModelInfo};
use crate::translate::{chat, prepare};
use crate::upstream::client::{read_limited, MAX_BUFFERED_BODY};
use crate::upstream::forward;

/// The checks every Model Inference request passes before its body is read.
fn preflight(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(AzureQuery, ExtraParams), ApiError> {
    let query = AzureQuery::from_uri(uri);
    state
        .config
        .api_versions
        .check(query.api_version.as_deref())?;
    let mode = ExtraParams::from_headers(headers, state.config.extra_parameters_default)?;
    Ok((query, mode))
}

/// `POST /chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (_, mode) = preflight(&state, &uri, &headers)?;
    let bytes = body_bytes(&headers, body, state.config.max_body_size).await?;
    let mut parsed = JsonBody::parse(&bytes)?;
    chat::check(&parsed)?;
    let changed = mode.apply(&mut parsed, chat::FIELDS)?;
    let model = match prepare::lacks_model(&parsed) {
        true => state.default_model().await,
        false => None,
    };
    let out = prepare::finish(&bytes, parsed, changed, model.as_deref(), &[]);
    let response = state
        .upstream
        .post_json("/v1/chat/completions", out)
        .await?;
    Ok(forward::relay(response))
}

/// `POST /embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (_, mode) = preflight(&state, &uri, &headers)?;
    let bytes = body_bytes(&headers, body, state.config.max_body_size).await?;
    let mut parsed = JsonBody::parse(&bytes)?;
    let request = embeddings::check(&parsed)?;
    let changed = mode.apply(&mut parsed, embeddings::FIELDS)?;
    supported_options(&state, request).await?;
    let model = match prepare::lacks_model(&parsed) {
        true => state.default_model().await,
        false => None,
    };
    // Engines mostly produce floats only: ask for floats and encode here.
    let set: &[(&str, &str)] = match request.encoding {
        Encoding::Float => &[],
        _ => &[("encoding_format", "\"float\"")],
    };
    let out = prepare::finish(&bytes, parsed, changed, model.as_deref(), set);
    let response = state.upstream.post_json("/v1/embeddings", out).await?;
    if request.encoding == Encoding::Float {
        return Ok(forward::relay(response));
    }
    let floats = read_limited(response, MAX_BUFFERED_BODY).await?;
    json_response(embeddings::encode_response(&floats, request.encoding)?)
}

/// `POST /images/embeddings`: served where the engine embeds images (vLLM's chat-style
/// embeddings input), otherwise the spec's 422.
pub async fn image_embeddings(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (_, mode) = preflight(&state, &uri, &headers)?;
    let bytes = body_bytes(&headers, body, state.config.max_body_size).await?;
    let mut parsed = JsonBody::parse(&bytes)?;
    let request = embeddings::check_images(&parsed)?;
    mode.apply(&mut parsed, embeddings::IMAGE_FIELDS)?;
    let engine = state.engine().await;
    if !engine.capabilities().image_embeddings {
        return Err(ApiError::OperationNotSupported {
            message: format!(
                "The model does not support image embeddings: its engine ({engine}) has no image embeddings route."
            ),
        });
    }
    supported_options(&state, request).await?;
    let model = match parsed.get_non_null("model") {
        Some(m) => Some(crate::translate::json::string("model", m)?.into_owned()),
        None => state.default_model().await,
    };
    let requests = embeddings::image_requests(&parsed, model.as_deref())?;
    let mut answers = Vec::with_capacity(requests.len());
    for r in requests {
        let response = state.upstream.post_json("/v1/embeddings", r).await?;
        answers.push(read_limited(response, MAX_BUFFERED_BODY).await?);
    }
    json_response(embeddings::merge_image_answers(&answers, request.encoding)?)
}

/// The spec's 422 for `dimensions` / `input_type` where the engine has no such option.
async fn supported_options(
    state: &AppState,
    request: embeddings::EmbeddingsRequest,
) -> Result<(), ApiError> {
    if !request.has_dimensions && !request.has_input_type {
        return Ok(());
    }
    let engine = state.engine().await;
    let caps = engine.capabilities();
    for (given, supported, param) in [
        (request.has_dimensions, caps.dimensions, "dimensions"),
        (request.has_input_type, caps.input_type, "input_type"),
    ] {
        if given && !supported {
            return Err(ApiError::UnsupportedParameter {
                message: format!(
                    "The model does not support the parameter '{param}' (engine: {engine})."
                ),
                param: param.to_owned(),
            });
        }
    }
    Ok(())
}

/// `GET /info`: the spec's ModelInfo for the engine's model (or the one named by `?model=`).
pub async fn info(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<ModelInfo>, ApiError> {
    let (query, _) = preflight(&state, &uri, &headers)?;
    let d = state.upstream.discover(false).await?;
    let cfg = &state.config;
    let wanted = query.model.as_deref().filter(|m| !m.is_empty());
    let model = match wanted {
        Some(name) => d
            .models
            .iter()
            .find(|m| m.id == name || cfg.model_name.as_deref() == Some(name))
            .ok_or_else(|| ApiError::ModelNotFound {
                model: name.to_owned(),
            })?,
        None => d.models.first().ok_or_else(|| ApiError::NotReady {
            detail: "the engine lists no model".into(),
        })?,
    };
    let model_type = match cfg.model_type {
        Some(t) => t,
        None => state.upstream.model_type(&d, &model.id).await,
    };
    let engine = cfg.engine.unwrap_or(d.engine);
    Ok(Json(ModelInfo {
        model_name: cfg.model_name.clone().unwrap_or_else(|| model.id.clone()),
        model_type,
        model_provider_name: info::provider_name(
            cfg.model_provider.as_deref(),
            model,
            engine.name(),
        ),
    }))
}

fn json_response(body: Bytes) -> Result<Response, ApiError> {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
