//! The life of one proxied JSON request, shared by both API surfaces:
//! 1. `api-version`, checked by the surface's rules;
//! 2. the body, read (bounded) and checked for the operation;
//! 3. fields outside the spec, handled by `extra-parameters` (Model Inference only);
//! 4. the target: the deployment in the path, else the `model` in the body, else the only one;
//! 5. the operation against the model's type and the engine's capabilities;
//! 6. the body sent with the engine's model name (bytes unchanged when nothing changes);
//! 7. the answer relayed (re-encoded only for embeddings formats the engine cannot produce).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::ApiError;
use crate::extract::{read_body, AzureQuery};
use crate::state::AppState;
use crate::translate::body::JsonBody;
use crate::translate::embeddings::{self, Encoding};
use crate::translate::extra_params::ExtraParams;
use crate::translate::info::ModelType;
use crate::translate::{adapt, chat, json, prepare};
use crate::upstream::forward;
use crate::upstream::pool::Target;

/// Which API the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Azure AI Model Inference (`/chat/completions`, `/models/...`).
    ModelInference,
    /// Azure OpenAI with `api-version` (`/openai/deployments/{d}/...`, `/openai/responses`).
    AzureOpenAi,
    /// Azure OpenAI's v1 routes (`/openai/v1/...`), api-version optional.
    V1,
}

/// What the client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Chat,
    Completions,
    Embeddings,
}

impl Op {
    fn engine_path(self) -> &'static str {
        match self {
            Op::Chat => "/v1/chat/completions",
            Op::Completions => "/v1/completions",
            Op::Embeddings => "/v1/embeddings",
        }
    }

    /// The operation's name in Azure's error messages.
    fn azure_name(self) -> &'static str {
        match self {
            Op::Chat => "chatCompletion",
            Op::Completions => "completion",
            Op::Embeddings => "embeddings",
        }
    }

    /// The OpenAI `object` of a complete answer.
    fn object(self) -> &'static str {
        match self {
            Op::Chat => "chat.completion",
            Op::Completions => "text_completion",
            Op::Embeddings => "list",
        }
    }

    /// The OpenTelemetry GenAI operation name.
    fn genai_name(self) -> &'static str {
        match self {
            Op::Chat => "chat",
            Op::Completions => "text_completion",
            Op::Embeddings => "embeddings",
        }
    }

    fn needs(self) -> ModelType {
        match self {
            Op::Embeddings => ModelType::Embeddings,
            Op::Chat | Op::Completions => ModelType::ChatCompletion,
        }
    }
}

/// Checks `api-version` by the surface's rules.
pub fn check_api_version<'u>(
    state: &AppState,
    surface: Surface,
    uri: &'u Uri,
) -> Result<AzureQuery<'u>, ApiError> {
    let query = AzureQuery::from_uri(uri);
    let given = query.api_version.as_deref();
    match surface {
        // The root routes act as a serverless endpoint (a missing api-version means the
        // default); `/models/...` and `/api/models/...` as a Foundry resource (required).
        Surface::ModelInference
            if given.is_none() && !state.config.require_api_version && is_root(uri) => {}
        Surface::ModelInference => {
            state.config.api_versions.check(given)?;
        }
        Surface::AzureOpenAi => state.config.openai_api_versions.check_openai(given)?,
        Surface::V1 => state.config.openai_api_versions.check_v1(given)?,
    }
    Ok(query)
}

fn is_root(uri: &Uri) -> bool {
    let path = uri.path();
    !path.starts_with("/models/") && !path.starts_with("/api/models/")
}

/// Runs one JSON request through the steps above.
pub async fn json_request(
    state: &AppState,
    surface: Surface,
    op: Op,
    deployment: Option<&str>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = check_api_version(state, surface, uri)?;
    let mode = match surface {
        Surface::ModelInference => {
            ExtraParams::from_headers(headers, state.config.extra_parameters_default)?
        }
        // Azure OpenAI has no extra-parameters header: unknown fields go to the engine.
        Surface::AzureOpenAi | Surface::V1 => ExtraParams::PassThrough,
    };
    let bytes = read_body(
        headers,
        body,
        state.config.max_body_size,
        state.config.body_read_timeout,
    )
    .await?;
    let mut parsed = JsonBody::parse(&bytes)?;
    let strict = surface == Surface::ModelInference;
    let mut encoding = Encoding::Float;
    let mut options = None;
    match op {
        Op::Chat if strict => {
            chat::check(&parsed)?;
        }
        Op::Chat => chat::check_basic(&parsed)?,
        Op::Completions => chat::check_completions(&parsed)?,
        Op::Embeddings => {
            let request = embeddings::check(&parsed)?;
            encoding = request.encoding;
            options = Some(request);
        }
    }
    let known: &[&str] = match op {
        Op::Embeddings => embeddings::FIELDS,
        _ => chat::fields_for(query.api_version.as_deref()),
    };
    let mut changed = mode.apply(&mut parsed, known)?;

    let target = resolve(state, surface, deployment, &parsed).await?;
    let engine = target.upstream.engine().await;
    if let Some(request) = options {
        embeddings::check_options(request, engine)?;
    }
    check_declared_type(&target, op)?;

    let include_usage = parsed
        .get_non_null("stream_options")
        .and_then(|o| serde_json::from_str::<serde_json::Value>(o.get()).ok())
        .is_some_and(|o| o.get("include_usage") == Some(&serde_json::Value::Bool(true)));
    let wants_stream = parsed
        .get_non_null("stream")
        .is_some_and(|s| s.get() == "true");
    let body_model = parsed
        .get_non_null("model")
        .and_then(|m| json::string("model", m).ok());
    let model = match body_model.as_deref() {
        Some(m) if *m == *target.model => None,
        _ => Some(&*target.model),
    };
    let mut edits: Vec<(&str, String)> = match op {
        Op::Chat => adapt::chat(&parsed, engine)?,
        _ => Vec::new(),
    };
    if encoding != Encoding::Float {
        // Engines mostly produce floats only: ask for floats and encode here.
        edits.push(("encoding_format", "\"float\"".to_owned()));
    }
    if op == Op::Embeddings && !engine.capabilities().input_type {
        // Clients such as LangChain send input_type "text" on every call: the default, safe
        // to drop where the engine has no such option.
        if parsed.get_non_null("input_type").map(|t| t.get()) == Some("\"text\"") {
            parsed.remove("input_type");
            changed = true;
        }
    }
    drop(body_model);
    let set: Vec<(&str, &str)> = edits.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = prepare::finish(&bytes, parsed, changed, model, &set);
    // Engines that never send the usage chunk get one made for them (counted from the stream,
    // the prompt counted by their tokenize route once the generation is over).
    let caps = engine.capabilities();
    let usage_fill = (wants_stream && include_usage && !caps.stream_usage).then(|| {
        caps.tokenize.map(|(path, field)| {
            let text = serde_json::from_slice::<serde_json::Value>(&bytes)
                .map(|v| crate::upstream::usage_fill::prompt_text(&v))
                .unwrap_or_default();
            let upstream = std::sync::Arc::clone(&target.upstream);
            let count: std::pin::Pin<Box<dyn std::future::Future<Output = Option<u64>> + Send>> =
                Box::pin(async move { upstream.count_tokens(path, field, text).await });
            count
        })
    });
    let sent_at = std::time::Instant::now();
    let answer = match target
        .upstream
        .forward_json(op.engine_path(), out, headers)
        .await
    {
        Ok(a) => a,
        Err(e) => return Err(explain_refusal(&target, op, e).await),
    };
    let (response, usage) = if encoding == Encoding::Float {
        // The response reports the deployment's model when it has another name than the engine's.
        let report_model = (target.deployment != target.model).then(|| target.deployment.clone());
        let options = forward::RelayJson {
            wants_stream,
            usage_fill,
            report_model,
            object: Some(op.object()),
        };
        forward::relay_json(answer, options).await?
    } else {
        let floats = answer.read_all().await?;
        let usage = crate::metrics::find_usage(&floats);
        (
            json_response(embeddings::encode_response(&floats, encoding)?),
            usage,
        )
    };
    crate::telemetry::report(crate::telemetry::Forwarded {
        deployment: target.deployment.clone(),
        operation: op.genai_name(),
        upstream_wait: sent_at.elapsed(),
        usage,
        upstream: Arc::clone(&target.upstream.name),
    });
    Ok(response)
}

/// Finds where the request goes.
pub async fn resolve(
    state: &AppState,
    surface: Surface,
    deployment: Option<&str>,
    body: &JsonBody<'_>,
) -> Result<Target, ApiError> {
    let pool = &state.pool;
    if let Some(d) = deployment {
        return pool.deployment(d).await;
    }
    let named = match body.get_non_null("model") {
        Some(m) => Some(json::string("model", m)?),
        None => None,
    };
    match (named, surface) {
        (None, _) => pool.only().await,
        (Some(name), Surface::V1 | Surface::AzureOpenAi) => pool.deployment(&name).await,
        (Some(name), Surface::ModelInference) => match pool.deployment(&name).await {
            Ok(t) => Ok(t),
            // One engine: the model name is the engine's business (many ignore it).
            Err(ApiError::DeploymentNotFound { .. }) if pool.upstreams().len() == 1 => {
                let mut t = pool.only().await?;
                t.model = Arc::from(name.as_ref());
                t.deployment = t.model.clone();
                t.model_type = None;
                Ok(t)
            }
            Err(ApiError::DeploymentNotFound { .. }) => Err(ApiError::ModelNotFound {
                model: name.into_owned(),
            }),
            Err(e) => Err(e),
        },
    }
}

/// Azure's 400 for an operation the deployment's model cannot do (embeddings on a chat
/// model, chat on an embeddings model).
fn wrong_operation(target: &Target, op: Op) -> ApiError {
    ApiError::OperationNotSupported {
        message: format!(
            "The {} operation does not work with the specified model, {}. Please choose different model and try again.",
            op.azure_name(),
            target.deployment
        ),
    }
}

/// Refuses up front when the model's type is declared (configuration) or reported by the
/// engine (TEI, TGI) and does not fit the operation.
fn check_declared_type(target: &Target, op: Op) -> Result<(), ApiError> {
    match target.model_type {
        Some(t) if t != op.needs() => Err(wrong_operation(target, op)),
        _ => Ok(()),
    }
}

/// When the engine refuses a request, says why in Azure's words if the reason is the model's
/// type (learned by probing, only on this error path so that an engine serving both kinds is
/// never refused); otherwise keeps the engine's own error.
async fn explain_refusal(target: &Target, op: Op, error: ApiError) -> ApiError {
    // A chat model asked for embeddings may answer 500 (llama-cpp-python does); a failing
    // chat request's 500 is the engine's own trouble and stays as it is.
    let refused = matches!(&error, ApiError::Upstream { status, .. }
        if status.is_client_error()
            || (op == Op::Embeddings && *status == axum::http::StatusCode::INTERNAL_SERVER_ERROR));
    if refused && target.model_type.is_none() {
        if let Some(t) = target.upstream.model_type(&target.model).await {
            if t != op.needs() {
                return wrong_operation(target, op);
            }
        }
    }
    error
}

/// A 200 JSON answer built by the proxy.
pub fn json_response(body: Bytes) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
