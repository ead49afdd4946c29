//! The one pooled HTTP client to the engine: sending requests, turning every failure into an
//! `ApiError` (never a 400 for the engine's fault), and learning what the engine serves.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use bytes::Bytes;
use serde_json::Value;

use crate::config::Config;
use crate::error::ApiError;
use crate::translate::info::{self, EngineModel, ModelType};
use crate::upstream::engines::Engine;

/// Largest engine error body read to build an error message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest engine answer read whole (model lists, embeddings to re-encode).
pub const MAX_BUFFERED_BODY: usize = 256 * 1024 * 1024;
/// How long readiness and discovery requests may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy learned about the engine.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub engine: Engine,
    pub models: Vec<EngineModel>,
    /// The model type the engine itself reports (TEI, TGI), if it does.
    pub reported_type: Option<ModelType>,
}

/// The engine behind the proxy.
#[derive(Debug)]
pub struct Upstream {
    client: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
    headers_timeout: Duration,
    configured_engine: Option<Engine>,
    discovery: RwLock<Option<Arc<Discovery>>>,
    /// Model type learned by probing, per model id.
    probed_types: RwLock<Vec<(String, ModelType)>>,
}

impl Upstream {
    /// Builds the pooled client from the configuration.
    pub fn new(config: &Config) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.upstream_connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))?;
        let auth = match &config.upstream_api_key {
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| "--upstream-api-key: not a valid header value".to_owned())?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Upstream {
            client,
            base: config.upstream_url.clone(),
            auth,
            headers_timeout: config.upstream_headers_timeout,
            configured_engine: config.engine,
            discovery: RwLock::new(None),
            probed_types: RwLock::new(Vec::new()),
        })
    }

    /// The engine's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(auth) = &self.auth {
            rb = rb.header(header::AUTHORIZATION, auth.clone());
        }
        rb
    }

    /// POSTs a JSON body and returns the engine's answer once its headers arrive. Error
    /// statuses become `ApiError::Upstream` with the engine's status and message.
    pub async fn post_json(&self, path: &str, body: Bytes) -> Result<reqwest::Response, ApiError> {
        let rb = self
            .request(reqwest::Method::POST, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = self.send(rb, self.headers_timeout).await?;
        check_status(response).await
    }

    /// GETs a route with the short probe timeout; the answer's status is not checked.
    async fn get(&self, path: &str) -> Result<reqwest::Response, ApiError> {
        self.send(self.request(reqwest::Method::GET, path), PROBE_TIMEOUT)
            .await
    }

    async fn send(
        &self,
        rb: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ApiError> {
        match tokio::time::timeout(timeout, rb.send()).await {
            Err(_) => Err(ApiError::UpstreamTimeout {
                detail: format!("no response headers within {} s", timeout.as_secs_f64()),
            }),
            Ok(Err(e)) if e.is_timeout() => Err(ApiError::UpstreamTimeout {
                detail: "connecting timed out".into(),
            }),
            Ok(Err(e)) => Err(ApiError::UpstreamUnreachable {
                detail: describe(&e),
            }),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// What the engine serves, asked once and cached; `refresh` asks again.
    pub async fn discover(&self, refresh: bool) -> Result<Arc<Discovery>, ApiError> {
        if !refresh {
            if let Ok(guard) = self.discovery.read() {
                if let Some(d) = guard.as_ref() {
                    return Ok(Arc::clone(d));
                }
            }
        }
        let found = Arc::new(self.ask_engine().await?);
        if let Ok(mut guard) = self.discovery.write() {
            *guard = Some(Arc::clone(&found));
        }
        Ok(found)
    }

    async fn ask_engine(&self) -> Result<Discovery, ApiError> {
        let configured = self.configured_engine;
        if configured != Some(Engine::Tei) {
            let response = self.get("/v1/models").await?;
            let status = response.status();
            let server = response
                .headers()
                .get(header::SERVER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if status.is_success() {
                let body = read_limited(response, MAX_ERROR_BODY * 16).await?;
                let models =
                    info::parse_models(&body).ok_or_else(|| ApiError::UpstreamInvalidResponse {
                        detail: "GET /v1/models did not answer a model list".into(),
                    })?;
                let owned_by = models.first().and_then(|m| m.owned_by.as_deref());
                let mut engine =
                    configured.unwrap_or_else(|| Engine::detect(owned_by, server.as_deref()));
                let mut reported_type = None;
                if matches!(engine, Engine::Generic | Engine::Tgi) {
                    // TGI describes its model at /info.
                    if let Some(i) = self.engine_info().await {
                        if i.model_type == Some(ModelType::ChatCompletion) {
                            engine = configured.unwrap_or(Engine::Tgi);
                            reported_type = i.model_type;
                        }
                    }
                }
                return Ok(Discovery {
                    engine,
                    models,
                    reported_type,
                });
            }
            if status == StatusCode::SERVICE_UNAVAILABLE || status.is_server_error() {
                return Err(ApiError::NotReady {
                    detail: format!("GET /v1/models answered {status}"),
                });
            }
        }
        // No /v1/models: TEI describes itself at /info.
        match self.engine_info().await {
            Some(i) => Ok(Discovery {
                engine: configured.unwrap_or(Engine::Tei),
                models: vec![EngineModel {
                    id: i.model_id,
                    owned_by: None,
                }],
                reported_type: i.model_type,
            }),
            None => Err(ApiError::UpstreamInvalidResponse {
                detail: "the engine answers neither GET /v1/models nor GET /info".into(),
            }),
        }
    }

    async fn engine_info(&self) -> Option<info::EngineInfo> {
        let response = self.get("/info").await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = read_limited(response, MAX_ERROR_BODY * 16).await.ok()?;
        info::parse_engine_info(&body)
    }

    /// The type of `model`: what the engine reports, else what it answers to a one-word
    /// embeddings request (asked once per model).
    pub async fn model_type(&self, discovery: &Discovery, model: &str) -> ModelType {
        if let Some(t) = discovery.reported_type {
            return t;
        }
        if let Ok(cache) = self.probed_types.read() {
            if let Some((_, t)) = cache.iter().find(|(m, _)| m == model) {
                return *t;
            }
        }
        let probe = serde_json::json!({"model": model, "input": "ping"}).to_string();
        let answer = self.post_json("/v1/embeddings", Bytes::from(probe)).await;
        let found = match answer {
            Ok(r) => match read_limited(r, MAX_BUFFERED_BODY).await {
                Ok(b)
                    if serde_json::from_slice::<Value>(&b).ok().and_then(|v| {
                        v.get("data")
                            .and_then(Value::as_array)
                            .map(|d| !d.is_empty())
                    }) == Some(true) =>
                {
                    ModelType::Embeddings
                }
                _ => ModelType::ChatCompletion,
            },
            Err(_) => ModelType::ChatCompletion,
        };
        if let Ok(mut cache) = self.probed_types.write() {
            cache.push((model.to_owned(), found));
        }
        found
    }

    /// Readiness: the engine answers its model list (or TEI's /info) right now.
    pub async fn ready(&self) -> Result<Arc<Discovery>, ApiError> {
        self.discover(true).await.map_err(|e| match e {
            ApiError::NotReady { .. } => e,
            other => ApiError::NotReady {
                detail: other.to_string(),
            },
        })
    }
}

/// Turns an engine error status into an `ApiError` that keeps the status and the message.
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = read_limited(response, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let (code, message) = engine_error(&body, status);
    let status = if status.is_informational() || status.is_redirection() {
        StatusCode::BAD_GATEWAY
    } else {
        status
    };
    Err(ApiError::Upstream {
        status,
        code,
        message,
    })
}

/// Reads the message (and code, when there is one) out of each engine's error shape:
/// OpenAI `{"error":{"message","code","type"}}`, TGI `{"error":"...","error_type":"..."}`,
/// FastAPI `{"detail":...}`, or plain text.
pub fn engine_error(body: &[u8], status: StatusCode) -> (String, String) {
    let fallback_code = status.as_u16().to_string();
    let text = || {
        let t = String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(2000)
            .collect::<String>();
        if t.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("engine error")
                .to_owned()
        } else {
            t
        }
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (fallback_code, text());
    };
    let as_code = |c: Option<&Value>| match c {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    if let Some(err) = v.get("error") {
        if let Some(msg) = err.get("message").and_then(Value::as_str) {
            let code = as_code(err.get("code"))
                .or_else(|| as_code(err.get("type")))
                .unwrap_or(fallback_code);
            return (code, msg.to_owned());
        }
        if let Some(msg) = err.as_str() {
            let code = as_code(v.get("error_type")).unwrap_or(fallback_code);
            return (code, msg.to_owned());
        }
    }
    match v.get("detail").or_else(|| v.get("message")) {
        Some(Value::String(s)) => (fallback_code, s.clone()),
        Some(other) => (fallback_code, other.to_string()),
        None => (fallback_code, text()),
    }
}

/// Reads a whole answer, refusing more than `limit` bytes.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::UpstreamInvalidResponse {
                        detail: format!("the answer is larger than {limit} bytes"),
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(buf)),
            Err(e) => {
                return Err(ApiError::UpstreamInvalidResponse {
                    detail: format!("reading the answer failed: {}", describe(&e)),
                })
            }
        }
    }
}

/// A one-line description of a client error with its causes, without the URL's secrets.
pub fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_error_shapes() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            engine_error(
                br#"{"error":{"message":"too long","type":"BadRequestError","code":400}}"#,
                s
            ),
            ("400".into(), "too long".into())
        );
        assert_eq!(
            engine_error(
                br#"{"error":"Input validation error","error_type":"validation"}"#,
                s
            ),
            ("validation".into(), "Input validation error".into())
        );
        assert_eq!(engine_error(br#"{"detail":"Not Found"}"#, s).1, "Not Found");
        assert_eq!(
            engine_error(b"plain failure", s),
            ("400".into(), "plain failure".into())
        );
        assert_eq!(engine_error(b"", StatusCode::BAD_GATEWAY).1, "Bad Gateway");
    }
}
