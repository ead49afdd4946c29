//! One engine ("upstream") with its replicas: the pooled HTTP clients, choosing a replica,
//! turning every failure into an `ApiError` (never a 400 for the engine's fault), and learning
//! what the engine serves.
//!
//! Client requests are the hot path. To plain-http replicas (the usual engine beside the proxy)
//! they go through `h1`, a lean HTTP/1.1 client (see its module for why); to https replicas
//! through hyper's pooled client (TLS, HTTP/2 by ALPN). reqwest's layers over hyper's client
//! (URL handling, header merging, retry and redirect machinery, body boxing) cost about 14 µs
//! of CPU per request on the benchmark machine (`bench/run.sh`), so the hot path does not use
//! it; the proxy's own low-rate calls (discovery, health checks, readiness) do.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use crate::config::{Config, UpstreamConfig};
use crate::error::ApiError;
use crate::translate::info::{self, EngineModel, ModelType};
use crate::upstream::engines::Engine;
use crate::upstream::h1::{H1Body, H1Error, H1Pool};

/// Largest engine error body read to build an error message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Client headers the engine gets: the request id and the W3C trace context. Nothing else
/// (credentials least of all) crosses over.
static FORWARDED_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];
/// The engine routes the proxy calls on every replica.
const ENGINE_ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/models",
    "/info",
];
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

/// One replica of an engine.
#[derive(Debug)]
pub struct Replica {
    /// Base URL without a trailing slash.
    pub base: String,
    /// The engine routes the proxy calls, parsed once: parsing a URL per request showed up in
    /// profiles (bench/profile.sh). A parsed `Uri` is cloned by reference counts.
    routes: Vec<(&'static str, Uri)>,
    /// The lean client's connections, for a plain-http replica.
    h1: Option<Arc<H1Pool>>,
    /// The base URL's path (`/prefix` of `http://host/prefix`), put before every route.
    base_path: String,
    /// Requests sent to it whose answers are still being relayed.
    outstanding: AtomicUsize,
    /// False after a failed connect or health check, until a health check succeeds.
    healthy: AtomicBool,
}

impl Replica {
    /// Whether the replica is in rotation.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Counts a request against its replica for as long as it lives; it travels inside the
/// relayed response body, so a stream counts until its last byte or its client's departure.
#[derive(Debug)]
pub struct InFlight(Arc<Replica>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An engine's answer as it arrives: status, headers, and a body still streaming.
pub type EngineResponse = axum::http::Response<EngineBody>;

/// An answer's body from either client.
#[derive(Debug)]
pub enum EngineBody {
    H1(H1Body),
    Hyper(hyper::body::Incoming),
}

impl EngineBody {
    /// The whole body, when it is already here (see [`H1Body::take_whole`]).
    pub fn take_whole(&mut self) -> Option<Bytes> {
        match self {
            EngineBody::H1(b) => b.take_whole(),
            EngineBody::Hyper(_) => None,
        }
    }
}

/// A failure while reading an answer's body.
#[derive(Debug)]
pub enum BodyError {
    H1(H1Error),
    Hyper(hyper::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::H1(e) => e.fmt(f),
            BodyError::Hyper(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::H1(e) => e.source(),
            BodyError::Hyper(e) => e.source(),
        }
    }
}

impl http_body::Body for EngineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        use std::task::Poll;
        match self.get_mut() {
            EngineBody::H1(b) => match std::pin::Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::H1(e)))),
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            EngineBody::Hyper(b) => match std::pin::Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Hyper(e)))),
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EngineBody::H1(b) => b.is_end_stream(),
            EngineBody::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            EngineBody::H1(b) => b.size_hint(),
            EngineBody::Hyper(b) => b.size_hint(),
        }
    }
}

/// The few headers of a hot-path request, borrowed from the upstream and the client's request.
#[derive(Default)]
pub struct DataHeaders<'h> {
    list: [Option<(&'h HeaderName, &'h HeaderValue)>; 5],
    len: usize,
}

impl<'h> DataHeaders<'h> {
    fn push(&mut self, name: &'h HeaderName, value: &'h HeaderValue) {
        if let Some(slot) = self.list.get_mut(self.len) {
            *slot = Some((name, value));
            self.len += 1;
        }
    }

    /// The headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)> + '_ {
        self.list.iter().flatten().copied()
    }
}

/// The hot-path client: pooled keep-alive connections, TLS when a replica's URL is https.
type DataClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An engine answer together with the in-flight count it holds.
#[derive(Debug)]
pub struct Answer {
    pub response: EngineResponse,
    pub in_flight: InFlight,
    /// Longest silence allowed between chunks of the answer.
    pub idle_timeout: Duration,
    /// Largest answer read whole.
    pub max_body: usize,
}

/// One engine behind the proxy, with its replicas.
#[derive(Debug)]
pub struct Upstream {
    /// The name from the configuration.
    pub name: Arc<str>,
    /// Forwards client requests (the hot path).
    data: DataClient,
    /// The proxy's own calls to the engine: discovery, health checks, readiness.
    client: reqwest::Client,
    replicas: Vec<Arc<Replica>>,
    auth: Option<HeaderValue>,
    headers_timeout: Duration,
    idle_timeout: Duration,
    max_body: usize,
    connect_retries: u32,
    configured_engine: Option<Engine>,
    discovery: RwLock<Option<Arc<Discovery>>>,
    /// Model type learned by probing, per model id.
    probed_types: RwLock<Vec<(String, ModelType)>>,
    /// Drives the choice of replicas.
    picks: AtomicU64,
}

impl Upstream {
    /// Builds the pooled client for one configured upstream.
    pub fn new(config: &Config, upstream: &UpstreamConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.upstream_connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))?;
        let data = data_client(config)?;
        let auth = match &upstream.api_key {
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    format!(
                        "upstream '{}': the API key is not a valid header value",
                        upstream.name
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Upstream {
            name: Arc::from(upstream.name.as_str()),
            data,
            client,
            replicas: upstream
                .urls
                .iter()
                .map(|base| {
                    let uri = base.parse::<Uri>().ok();
                    let base_path = uri
                        .as_ref()
                        .map(|u| u.path().trim_end_matches('/').to_owned())
                        .unwrap_or_default();
                    let h1 = uri
                        .as_ref()
                        .filter(|u| u.scheme_str() == Some("http") && u.query().is_none())
                        .and_then(|u| u.authority())
                        .and_then(|a| {
                            H1Pool::new(
                                a.as_str(),
                                1024,
                                Duration::from_secs(60),
                                config.upstream_connect_timeout,
                            )
                        })
                        .map(Arc::new);
                    Arc::new(Replica {
                        h1,
                        base_path,
                        routes: ENGINE_ROUTES
                            .iter()
                            .filter_map(|r| Some((*r, format!("{base}{r}").parse().ok()?)))
                            .collect(),
                        base: base.clone(),
                        outstanding: AtomicUsize::new(0),
                        healthy: AtomicBool::new(true),
                    })
                })
                .collect(),
            auth,
            headers_timeout: config.upstream_headers_timeout,
            idle_timeout: config.upstream_idle_timeout,
            max_body: config.max_upstream_body_size,
            connect_retries: config.upstream_connect_retries,
            configured_engine: upstream.engine,
            discovery: RwLock::new(None),
            probed_types: RwLock::new(Vec::new()),
            picks: AtomicU64::new(0),
        })
    }

    /// The replicas.
    pub fn replicas(&self) -> &[Arc<Replica>] {
        &self.replicas
    }

    /// The engine as configured, else as discovered, else `Generic`.
    pub async fn engine(&self) -> Engine {
        if let Some(e) = self.configured_engine {
            return e;
        }
        match self.discover(false).await {
            Ok(d) => d.engine,
            Err(_) => Engine::Generic,
        }
    }

    /// Replicas in the order to try them: the less busy of two picked at random among the
    /// healthy ones first (power of two choices), then the other healthy ones, then the
    /// unhealthy ones as a last resort.
    fn order(&self) -> Vec<Arc<Replica>> {
        let n = self.replicas.len();
        if n <= 1 {
            return self.replicas.clone();
        }
        let pick = self.picks.fetch_add(1, Ordering::Relaxed);
        // A cheap, well-mixed pseudo-random number (splitmix64 of a counter).
        let mut z = pick.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let start = (z % n as u64) as usize;
        let mut order: Vec<Arc<Replica>> = (0..n)
            .map(|i| Arc::clone(&self.replicas[(start + i) % n]))
            .collect();
        if order.len() >= 2
            && order[1].outstanding.load(Ordering::Relaxed)
                < order[0].outstanding.load(Ordering::Relaxed)
        {
            order.swap(0, 1);
        }
        // Stable: keeps the two-choice order among the healthy ones.
        order.sort_by_key(|r| !r.is_healthy());
        order
    }

    /// A control-plane request (reqwest) to one replica.
    fn request(
        &self,
        replica: &Replica,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", replica.base));
        if let Some(auth) = &self.auth {
            rb = rb.header(header::AUTHORIZATION, auth.clone());
        }
        rb
    }

    /// The headers of a hot-path POST: content type, the engine's key, the request id and
    /// trace context, borrowed (the lean client writes them out without building a map).
    fn data_headers<'h>(
        &'h self,
        content_type: &'h HeaderValue,
        incoming: Option<&'h HeaderMap>,
    ) -> DataHeaders<'h> {
        let mut headers = DataHeaders::default();
        headers.push(&header::CONTENT_TYPE, content_type);
        if let Some(auth) = &self.auth {
            headers.push(&header::AUTHORIZATION, auth);
        }
        if let Some(incoming) = incoming {
            // One pass over the request's few headers, where a hashed lookup per name cost
            // more; the first value of each name is forwarded.
            let mut seen = [false; FORWARDED_HEADERS.len()];
            for (name, value) in incoming {
                if let Some(i) = FORWARDED_HEADERS.iter().position(|n| n == name) {
                    if !std::mem::replace(&mut seen[i], true) {
                        headers.push(&FORWARDED_HEADERS[i], value);
                    }
                }
            }
        }
        headers
    }

    /// Sends a hot-path POST to one replica: by the lean client to a plain-http replica, else
    /// by hyper's.
    async fn send_to(
        &self,
        replica: &Replica,
        path: &str,
        headers: &DataHeaders<'_>,
        body: &Bytes,
    ) -> Result<EngineResponse, SendError> {
        if let Some(pool) = &replica.h1 {
            let full = if replica.base_path.is_empty() {
                std::borrow::Cow::Borrowed(path)
            } else {
                std::borrow::Cow::Owned(format!("{}{path}", replica.base_path))
            };
            return send_h1(pool, &full, headers, body, self.headers_timeout).await;
        }
        let uri = match replica.routes.iter().find(|(r, _)| *r == path) {
            Some((_, uri)) => uri.clone(),
            None => format!("{}{path}", replica.base).parse().map_err(|_| {
                SendError::Other(ApiError::UpstreamUnreachable {
                    detail: format!("'{}{path}' is not a valid URL", replica.base),
                })
            })?,
        };
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let map = request.headers_mut();
        for (name, value) in headers.iter() {
            map.insert(name.clone(), value.clone());
        }
        send_data(&self.data, request, self.headers_timeout).await
    }

    /// POSTs a JSON body and returns the engine's answer once its headers arrive.
    pub async fn post_json(&self, path: &str, body: Bytes) -> Result<Answer, ApiError> {
        self.post(
            path,
            body,
            HeaderValue::from_static("application/json"),
            None,
        )
        .await
    }

    /// POSTs a client's request: like `post_json`, carrying the request id and trace context.
    pub async fn forward_json(
        &self,
        path: &str,
        body: Bytes,
        incoming: &HeaderMap,
    ) -> Result<Answer, ApiError> {
        let json = HeaderValue::from_static("application/json");
        self.post(path, body, json, Some(incoming)).await
    }

    /// POSTs a body of any content type. A replica that cannot be connected to is marked
    /// unhealthy and the next one is tried; once a replica has the request it is never retried.
    /// Error statuses become `ApiError::Upstream` with the engine's status and message.
    pub async fn post(
        &self,
        path: &str,
        body: Bytes,
        content_type: HeaderValue,
        incoming: Option<&HeaderMap>,
    ) -> Result<Answer, ApiError> {
        let headers = self.data_headers(&content_type, incoming);
        let mut last = None;
        for round in 0..=self.connect_retries {
            if round > 0 {
                // The engine may be loading: wait a little longer each round.
                tokio::time::sleep(Duration::from_millis(100 << (round - 1).min(6))).await;
            }
            // One replica (the usual case) needs no ordering, and no list.
            let ordered;
            let replicas = if self.replicas.len() == 1 {
                &self.replicas
            } else {
                ordered = self.order();
                &ordered
            };
            for replica in replicas {
                replica.outstanding.fetch_add(1, Ordering::Relaxed);
                let in_flight = InFlight(Arc::clone(replica));
                let sent = self.send_to(replica, path, &headers, &body).await;
                match sent {
                    Ok(response) => {
                        return Ok(Answer {
                            response: check_status(response).await?,
                            in_flight,
                            idle_timeout: self.idle_timeout,
                            max_body: self.max_body,
                        })
                    }
                    Err(SendError::Connect(e)) => {
                        if replica.healthy.swap(false, Ordering::Relaxed) {
                            tracing::warn!(upstream = %self.name, replica = %replica.base, error = %e, "replica unreachable; taken out of rotation");
                        }
                        last = Some(e);
                    }
                    Err(SendError::Other(e)) => return Err(e),
                }
            }
        }
        Err(match last {
            Some(ApiError::UpstreamUnreachable { detail }) => ApiError::NotReady {
                detail: format!(
                    "the engine refuses connections (it may still be loading): {detail}"
                ),
            },
            Some(other) => other,
            None => ApiError::UpstreamUnreachable {
                detail: "no replica configured".into(),
            },
        })
    }

    /// GETs a route on one replica with the short probe timeout; the status is not checked.
    async fn get(&self, replica: &Replica, path: &str) -> Result<reqwest::Response, ApiError> {
        send(
            self.request(replica, reqwest::Method::GET, path),
            PROBE_TIMEOUT,
        )
        .await
        .map_err(|e| match e {
            SendError::Connect(ApiError::UpstreamUnreachable { detail }) => ApiError::NotReady {
                detail: format!(
                    "the engine refuses connections (it may still be loading): {detail}"
                ),
            },
            other => other.into_api(),
        })
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
        let mut last = None;
        for replica in self.order() {
            match self.ask_engine(&replica).await {
                Ok(found) => {
                    let found = Arc::new(found);
                    if let Ok(mut guard) = self.discovery.write() {
                        *guard = Some(Arc::clone(&found));
                    }
                    return Ok(found);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ApiError::UpstreamUnreachable {
            detail: "no replica configured".into(),
        }))
    }

    /// Health check of every replica: in rotation when it answers its model list (or /info),
    /// out when it does not.
    ///
    /// A replica answering requests right now is alive and is left alone: some engines
    /// (llama-cpp-python's server, by default) cut a running stream short whenever another
    /// request reaches them.
    pub async fn check_replicas(&self) {
        for replica in &self.replicas {
            if let Some(h1) = &replica.h1 {
                h1.sweep();
            }
            if replica.outstanding.load(Ordering::Relaxed) > 0 && replica.is_healthy() {
                continue;
            }
            let found = self.ask_engine(replica).await.ok();
            let ok = found.is_some();
            if let (Some(found), Ok(mut guard)) = (found, self.discovery.write()) {
                // Keeps the model list current when an engine restarts with another model.
                *guard = Some(Arc::new(found));
            }
            let was = replica.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                tracing::info!(upstream = %self.name, replica = %replica.base, healthy = ok, "replica health changed");
            }
        }
    }

    async fn ask_engine(&self, replica: &Replica) -> Result<Discovery, ApiError> {
        let configured = self.configured_engine;
        if configured != Some(Engine::Tei) {
            let response = self.get(replica, "/v1/models").await?;
            let status = response.status();
            let server = response
                .headers()
                .get(header::SERVER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if status.is_success() {
                let body = read_limited(reqwest_body(response), MAX_ERROR_BODY * 16).await?;
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
                    if let Some(i) = self.engine_info(replica).await {
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
        let response = self.get(replica, "/info").await?;
        let status = response.status();
        let body = read_limited(reqwest_body(response), MAX_ERROR_BODY * 16).await?;
        match info::parse_engine_info(&body).filter(|_| status.is_success()) {
            Some(i) => Ok(Discovery {
                engine: configured.unwrap_or(Engine::Tei),
                models: vec![EngineModel {
                    id: i.model_id,
                    owned_by: None,
                }],
                reported_type: i.model_type,
            }),
            None if status.is_server_error() => Err(ApiError::NotReady {
                detail: format!("GET /info answered {status}"),
            }),
            None => Err(ApiError::UpstreamInvalidResponse {
                detail: "the engine answers neither GET /v1/models nor GET /info".into(),
            }),
        }
    }

    async fn engine_info(&self, replica: &Replica) -> Option<info::EngineInfo> {
        let response = self.get(replica, "/info").await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = read_limited(reqwest_body(response), MAX_ERROR_BODY * 16)
            .await
            .ok()?;
        info::parse_engine_info(&body)
    }

    /// The type of `model`: what the engine reports, else what it answers to a one-word
    /// embeddings request (asked once per model). `None` when the engine gave no clear answer
    /// (unreachable, overloaded), so nothing is cached.
    pub async fn model_type(&self, model: &str) -> Option<ModelType> {
        if let Some(t) = self.known_model_type(model) {
            return Some(t);
        }
        if let Ok(d) = self.discover(false).await {
            if let Some(t) = d.reported_type {
                return Some(t);
            }
        }
        let probe = serde_json::json!({"model": model, "input": "ping"}).to_string();
        let found = match self.post_json("/v1/embeddings", Bytes::from(probe)).await {
            Ok(a) => {
                let body = read_limited(a.response.into_body(), MAX_ERROR_BODY * 16)
                    .await
                    .ok()?;
                let has_vectors = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                    v.get("data")
                        .and_then(Value::as_array)
                        .map(|d| !d.is_empty())
                });
                match has_vectors {
                    Some(true) => ModelType::Embeddings,
                    _ => ModelType::ChatCompletion,
                }
            }
            // The engine refused embeddings for this model: it generates text.
            Err(ApiError::Upstream { status, .. })
                if status.is_client_error() || status == StatusCode::INTERNAL_SERVER_ERROR =>
            {
                ModelType::ChatCompletion
            }
            Err(_) => return None,
        };
        if let Ok(mut cache) = self.probed_types.write() {
            cache.push((model.to_owned(), found));
        }
        Some(found)
    }

    /// Counts the tokens of `text` with the engine's tokenize route (`path`, text in `field`);
    /// `None` when the engine cannot say.
    pub async fn count_tokens(&self, path: &str, field: &str, text: String) -> Option<u64> {
        let mut body = serde_json::Map::new();
        body.insert(field.to_owned(), Value::from(text));
        let answer = self
            .post_json(path, Bytes::from(Value::Object(body).to_string()))
            .await
            .ok()?;
        let v: Value = serde_json::from_slice(
            &read_limited(answer.response.into_body(), MAX_ERROR_BODY * 16)
                .await
                .ok()?,
        )
        .ok()?;
        v.get("count").and_then(Value::as_u64).or_else(|| {
            v.get("tokens")
                .and_then(Value::as_array)
                .map(|t| t.len() as u64)
        })
    }

    /// The model type the engine itself reported at discovery (TEI, TGI), if any.
    pub fn reported_model_type(&self) -> Option<ModelType> {
        self.discovery
            .read()
            .ok()?
            .as_ref()
            .and_then(|d| d.reported_type)
    }

    /// The model type if already known without asking the engine.
    pub fn known_model_type(&self, model: &str) -> Option<ModelType> {
        let d = self
            .discovery
            .read()
            .ok()?
            .as_ref()
            .and_then(|d| d.reported_type);
        d.or_else(|| {
            self.probed_types
                .read()
                .ok()?
                .iter()
                .find(|(m, _)| m == model)
                .map(|(_, t)| *t)
        })
    }

    /// Readiness: the engine answers its model list (or TEI's /info) right now.
    /// While the engine is answering requests it is ready, and is not asked again (a probe
    /// would cut a llama-cpp-python stream short).
    pub async fn ready(&self) -> Result<Arc<Discovery>, ApiError> {
        let busy = self
            .replicas
            .iter()
            .any(|r| r.outstanding.load(Ordering::Relaxed) > 0 && r.is_healthy());
        if busy {
            if let Ok(guard) = self.discovery.read() {
                if let Some(d) = guard.as_ref() {
                    return Ok(Arc::clone(d));
                }
            }
        }
        self.discover(true).await.map_err(|e| match e {
            ApiError::NotReady { .. } => e,
            other => ApiError::NotReady {
                detail: other.to_string(),
            },
        })
    }
}

/// Why a request got no answer: a connect failure (safe to retry elsewhere) or anything else.
enum SendError {
    Connect(ApiError),
    Other(ApiError),
}

impl SendError {
    fn into_api(self) -> ApiError {
        match self {
            SendError::Connect(e) | SendError::Other(e) => e,
        }
    }
}

/// Builds the hot-path client: keep-alive pool, connect timeout, TLS (webpki roots, as reqwest's
/// `rustls-tls`) for https replicas, HTTP/2 when a TLS engine offers it.
fn data_client(config: &Config) -> Result<DataClient, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(config.upstream_connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| format!("cannot set up TLS for the upstream client: {e}"))?
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(https),
    )
}

/// Sends a hot-path request, waiting at most `timeout` for the answer's headers.
async fn send_data(
    client: &DataClient,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<EngineResponse, SendError> {
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err(SendError::Other(ApiError::UpstreamTimeout {
            detail: format!("no response headers within {} s", timeout.as_secs_f64()),
        })),
        Ok(Err(e)) if e.is_connect() => {
            let timed_out =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |s| {
                    s.source()
                })
                .any(|s| {
                    s.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                });
            let err = if timed_out {
                ApiError::UpstreamTimeout {
                    detail: "connecting timed out".into(),
                }
            } else {
                ApiError::UpstreamUnreachable {
                    detail: describe(&e),
                }
            };
            Err(SendError::Connect(err))
        }
        Ok(Err(e)) => Err(SendError::Other(ApiError::UpstreamUnreachable {
            detail: describe(&e),
        })),
        Ok(Ok(r)) => Ok(r.map(EngineBody::Hyper)),
    }
}

/// Sends a hot-path request with the lean client, waiting at most `timeout` for the answer's
/// head.
async fn send_h1(
    pool: &Arc<H1Pool>,
    path: &str,
    headers: &DataHeaders<'_>,
    body: &Bytes,
    timeout: Duration,
) -> Result<EngineResponse, SendError> {
    match tokio::time::timeout(timeout, pool.post(path, headers, body)).await {
        Err(_) => Err(SendError::Other(ApiError::UpstreamTimeout {
            detail: format!("no response headers within {} s", timeout.as_secs_f64()),
        })),
        Ok(Ok(r)) => Ok(r.map(EngineBody::H1)),
        Ok(Err(H1Error::ConnectTimeout)) => Err(SendError::Connect(ApiError::UpstreamTimeout {
            detail: "connecting timed out".into(),
        })),
        Ok(Err(e @ H1Error::Connect(_))) => {
            Err(SendError::Connect(ApiError::UpstreamUnreachable {
                detail: e.to_string(),
            }))
        }
        Ok(Err(e @ H1Error::Invalid(_))) => {
            Err(SendError::Other(ApiError::UpstreamInvalidResponse {
                detail: e.to_string(),
            }))
        }
        Ok(Err(e)) => Err(SendError::Other(ApiError::UpstreamUnreachable {
            detail: e.to_string(),
        })),
    }
}

/// A control-plane answer's body, for `read_limited`.
fn reqwest_body(response: reqwest::Response) -> reqwest::Body {
    axum::http::Response::from(response).into_body()
}

async fn send(
    rb: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, SendError> {
    match tokio::time::timeout(timeout, rb.send()).await {
        Err(_) => Err(SendError::Other(ApiError::UpstreamTimeout {
            detail: format!("no response headers within {} s", timeout.as_secs_f64()),
        })),
        Ok(Err(e)) if e.is_connect() => {
            let err = if e.is_timeout() {
                ApiError::UpstreamTimeout {
                    detail: "connecting timed out".into(),
                }
            } else {
                ApiError::UpstreamUnreachable {
                    detail: describe(&e),
                }
            };
            Err(SendError::Connect(err))
        }
        Ok(Err(e)) if e.is_timeout() => Err(SendError::Other(ApiError::UpstreamTimeout {
            detail: describe(&e),
        })),
        Ok(Err(e)) => Err(SendError::Other(ApiError::UpstreamUnreachable {
            detail: describe(&e),
        })),
        Ok(Ok(r)) => Ok(r),
    }
}

/// Turns an engine error status into an `ApiError` that keeps the status and the message.
async fn check_status(response: EngineResponse) -> Result<EngineResponse, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = read_limited(response.into_body(), MAX_ERROR_BODY)
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

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_limited<B>(mut body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
{
    let mut buf = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::UpstreamInvalidResponse {
                        detail: format!("the answer is larger than {limit} bytes"),
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            None => return Ok(Bytes::from(buf)),
            Some(Err(e)) => {
                return Err(ApiError::UpstreamInvalidResponse {
                    detail: format!("reading the answer failed: {}", describe(&e)),
                })
            }
        }
    }
}

/// A one-line description of a client error with its causes, without the URL's secrets.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
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
