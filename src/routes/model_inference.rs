//! Handlers of the Azure AI Model Inference routes: thin shells over `proxy`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Json;

use crate::error::ApiError;
use crate::extract::read_body;
use crate::proxy::{self, Surface};
use crate::state::AppState;
use crate::translate::body::JsonBody;
use crate::translate::embeddings;
use crate::translate::extra_params::ExtraParams;
use crate::translate::info::{self, ModelInfo, ModelType};

/// `POST /images/embeddings`: served where the engine embeds images (vLLM's chat-style
/// embeddings input), otherwise Azure's 400 `OperationNotSupported`.
pub async fn image_embeddings(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    proxy::check_api_version(&state, Surface::ModelInference, &uri)?;
    let mode = ExtraParams::from_headers(&headers, state.config.extra_parameters_default)?;
    let bytes = read_body(
        &headers,
        body,
        state.config.max_body_size,
        state.config.body_read_timeout,
    )
    .await?;
    let mut parsed = JsonBody::parse(&bytes)?;
    let request = embeddings::check_images(&parsed)?;
    mode.apply(&mut parsed, embeddings::IMAGE_FIELDS)?;
    let target = proxy::resolve(&state, Surface::ModelInference, None, &parsed).await?;
    let engine = target.upstream.engine().await;
    if !engine.capabilities().image_embeddings {
        return Err(ApiError::OperationNotSupported {
            message: format!("The model does not support image embeddings: its engine ({engine}) has no image embeddings route."),
        });
    }
    embeddings::check_options(request, engine)?;
    let requests = embeddings::image_requests(&parsed, Some(&target.model))?;
    let mut answers = Vec::with_capacity(requests.len());
    for r in requests {
        let answer = target.upstream.post_json("/v1/embeddings", r).await?;
        answers.push(answer.read_all().await?);
    }
    Ok(proxy::json_response(embeddings::merge_image_answers(
        &answers,
        request.encoding,
    )?))
}

/// `GET /info`: the spec's ModelInfo for the endpoint's model (or the one named by `?model=`).
pub async fn info(State(state): State<AppState>, uri: Uri) -> Result<Json<ModelInfo>, ApiError> {
    let query = proxy::check_api_version(&state, Surface::ModelInference, &uri)?;
    let pool = &state.pool;
    let target = match query.model.as_deref().filter(|m| !m.is_empty()) {
        Some(name) => pool.deployment(name).await.map_err(|e| match e {
            ApiError::DeploymentNotFound { deployment } => {
                ApiError::ModelNotFound { model: deployment }
            }
            other => other,
        })?,
        None => pool.only().await?,
    };
    let cfg = &state.config;
    let model_type = match target.model_type {
        Some(t) => t,
        None => target
            .upstream
            .model_type(&target.model)
            .await
            .ok_or_else(|| ApiError::NotReady {
                detail: "the engine did not say which kind of model it serves".into(),
            })?,
    };
    let listed = pool.list().await?;
    let owned_by = listed
        .iter()
        .find(|l| l.deployment == target.deployment)
        .and_then(|l| l.owned_by.clone());
    let engine = target.upstream.engine().await;
    let model = info::EngineModel {
        id: target.model.to_string(),
        owned_by,
    };
    Ok(Json(ModelInfo {
        model_name: target.deployment.to_string(),
        model_type: match model_type {
            ModelType::ChatCompletion => ModelType::ChatCompletion,
            ModelType::Embeddings => ModelType::Embeddings,
        },
        model_provider_name: info::provider_name(
            cfg.model_provider.as_deref(),
            &model,
            engine.name(),
        ),
    }))
}
