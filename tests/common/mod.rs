//! Shared test helpers: a mock OpenAI-compatible engine that records what it receives and
//! answers as each real engine does, and the proxy started on an ephemeral port in front of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

use azure_openai_proxy::cli::Args;
use azure_openai_proxy::config::Config;
use azure_openai_proxy::state::AppState;

/// The binary's allocator here too, so that every test (in-process proxy, mock engine, many
/// threads freeing each other's blocks) runs on it.
#[global_allocator]
static ALLOCATOR: azure_openai_proxy::alloc::CachingAlloc = azure_openai_proxy::alloc::CachingAlloc;

/// The latest supported version, as clients send it.
pub const V: &str = "2024-05-01-preview";

/// One request the mock engine received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the mock answers a route.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status and a body, sent with the given content type.
    Fixed(u16, &'static str, String),
    /// An event stream: each chunk is sent as its own write; before the chunk at index
    /// `gate`, the mock waits for `Mock::release`.
    Stream {
        chunks: Vec<String>,
        gate: Option<usize>,
    },
    /// Sends headers, one chunk, then drops the connection.
    BreakAfter(String),
    /// Never answers.
    Hang,
}

/// What the mock serves; tests change it through `Mock::set`.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub models: Reply,
    pub info: Reply,
    pub chat: Reply,
    pub embeddings: Reply,
    /// `/v1/completions`, `/v1/responses`, `/v1/audio/transcriptions`.
    pub other: Reply,
    pub server_header: Option<&'static str>,
    /// Whether requests are recorded (off for soak tests, where recording is the growth).
    pub record: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            models: json(200, MODELS_VLLM),
            info: Reply::Fixed(404, "application/json", r#"{"detail":"Not Found"}"#.into()),
            chat: json(200, CHAT_ANSWER),
            embeddings: json(200, EMBEDDINGS_ANSWER),
            other: json(200, r#"{"id":"x","object":"other"}"#),
            server_header: None,
            record: true,
        }
    }
}

impl Behaviour {
    /// A chat stream that sends one chunk, then waits for `Mock::release` before `[DONE]`.
    pub fn held_stream() -> Behaviour {
        Behaviour {
            chat: Reply::Stream {
                chunks: vec![chunk("one"), "data: [DONE]\n\n".into()],
                gate: Some(1),
            },
            ..Behaviour::default()
        }
    }
}

/// A JSON reply.
pub fn json(status: u16, body: &str) -> Reply {
    Reply::Fixed(status, "application/json", body.to_owned())
}

pub const MODELS_VLLM: &str = r#"{"object":"list","data":[{"id":"meta-llama/Llama-3.1-8B-Instruct","object":"model","created":1720000000,"owned_by":"vllm","root":"meta-llama/Llama-3.1-8B-Instruct","parent":null,"max_model_len":8192,"permission":[]}]}"#;
pub const MODELS_LLAMACPP: &str = r#"{"object":"list","data":[{"id":"smollm2","object":"model","owned_by":"llamacpp","meta":{"n_params":135000000}}]}"#;
pub const MODELS_SGLANG: &str = r#"{"object":"list","data":[{"id":"Qwen/Qwen2.5-7B-Instruct","object":"model","created":1730000000,"owned_by":"sglang","root":"Qwen/Qwen2.5-7B-Instruct"}]}"#;
pub const MODELS_TGI: &str = r#"{"object":"list","data":[{"id":"mistralai/Mistral-7B-Instruct-v0.3","object":"model","created":0,"owned_by":"mistralai/Mistral-7B-Instruct-v0.3"}]}"#;
pub const INFO_TGI: &str = r#"{"model_id":"mistralai/Mistral-7B-Instruct-v0.3","model_sha":null,"model_pipeline_tag":"text-generation","max_total_tokens":4096,"version":"3.0.0"}"#;
pub const INFO_TEI: &str = r#"{"model_id":"BAAI/bge-small-en-v1.5","model_sha":null,"model_dtype":"float32","model_type":{"embedding":{"pooling":"cls"}},"max_input_length":512,"version":"1.5.0"}"#;
pub const CHAT_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1720000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
pub const EMBEDDINGS_ANSWER: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1.0,0.25,0.0]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}"#;

/// A client that speaks HTTP/2 from the first byte (prior knowledge, no upgrade).
pub fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// A chunk of a chat stream carrying `text`.
pub fn chunk(text: &str) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

/// The running mock engine.
#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    gate: Arc<Notify>,
    /// Notified when a client of a streamed answer went away before the stream's end.
    pub stream_cancelled: Arc<Notify>,
}

impl Mock {
    /// Starts a mock engine with `behaviour` on 127.0.0.1:0.
    pub async fn start(behaviour: Behaviour) -> Mock {
        Mock::start_at("127.0.0.1:0", behaviour).await
    }

    /// Starts a mock engine on a given address.
    pub async fn start_at(addr: &str, behaviour: Behaviour) -> Mock {
        let listener = TcpListener::bind(addr).await.unwrap();
        let mock = Mock {
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
            gate: Arc::new(Notify::new()),
            stream_cancelled: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/v1/models", get(answer))
            .route("/info", get(answer))
            .route("/v1/chat/completions", post(answer))
            .route("/v1/embeddings", post(answer))
            .route("/v1/completions", post(answer))
            .route("/v1/responses", post(answer))
            .route("/v1/audio/transcriptions", post(answer))
            .route("/extras/tokenize/count", post(answer))
            .with_state(mock.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        mock
    }

    /// The engine's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what the mock serves.
    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Requests received on `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Lets a gated stream continue.
    pub fn release(&self) {
        self.gate.notify_one();
    }
}

async fn answer(State(mock): State<Mock>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let behaviour = mock.behaviour.lock().unwrap().clone();
    if behaviour.record {
        mock.received.lock().unwrap().push(Received {
            method: parts.method.to_string(),
            path: path.clone(),
            headers: parts.headers,
            body,
        });
    }
    let reply = match path.as_str() {
        "/v1/models" => behaviour.models,
        "/info" => behaviour.info,
        "/v1/chat/completions" => behaviour.chat,
        "/v1/embeddings" => behaviour.embeddings,
        _ => behaviour.other,
    };
    let mut response = match reply {
        Reply::Fixed(status, content_type, body) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Reply::Stream { chunks, gate } => {
            let gate_notify = mock.gate.clone();
            let cancelled = mock.stream_cancelled.clone();
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
            tokio::spawn(async move {
                for (i, c) in chunks.into_iter().enumerate() {
                    if gate == Some(i) {
                        gate_notify.notified().await;
                    }
                    if tx.send(Ok(Bytes::from(c))).await.is_err() {
                        cancelled.notify_one();
                        return;
                    }
                }
            });
            let stream = tokio_stream_from(rx);
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Reply::BreakAfter(first) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(first))).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "gone",
                    )))
                    .await;
            });
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(tokio_stream_from(rx)),
            )
                .into_response()
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    };
    if let Some(server) = behaviour.server_header {
        response
            .headers_mut()
            .insert("server", server.parse().unwrap());
    }
    response
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The proxy running in-process on a real socket.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The proxy's shared state (to look inside, e.g. at the draining flag).
    pub state: AppState,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub done: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Starts the proxy with command-line `args` (the upstream URL is added by the caller).
    pub async fn start(args: &[&str]) -> Proxy {
        let mut argv = vec!["azure-openai-proxy"];
        argv.extend_from_slice(args);
        let config = Config::from_args(Args::try_parse_from(argv).unwrap()).unwrap();
        let drain = config.shutdown_timeout;
        let limits = azure_openai_proxy::server::Limits::from_config(&config);
        let state = AppState::new(config).unwrap();
        state.pool.spawn_health_checks();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let app = azure_openai_proxy::app(state.clone());
        let done = tokio::spawn(async move {
            azure_openai_proxy::server::serve(
                listener,
                app,
                async {
                    let _ = rx.await;
                },
                drain,
                limits,
            )
            .await;
        });
        Proxy {
            addr,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            done: Some(done),
        }
    }

    /// Starts the proxy in front of `mock` with extra `args`.
    pub async fn before(mock: &Mock, args: &[&str]) -> Proxy {
        let url = mock.url();
        let mut all = vec!["--upstream-url", url.as_str()];
        all.extend_from_slice(args);
        Proxy::start(&all).await
    }

    /// A full URL for `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// POSTs a JSON string.
    pub async fn post(&self, path_and_query: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path_and_query))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// GETs a path.
    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(self.url(path_and_query))
            .send()
            .await
            .unwrap()
    }

    /// Signals shutdown (as SIGTERM does).
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads an Azure error answer: checks its shape and the header, returns (status, code, message).
pub async fn azure_error(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get("x-ms-error-code")
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = response.json().await.expect("error body must be JSON");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_owned();
    assert_eq!(
        header.as_deref(),
        Some(code.as_str()),
        "x-ms-error-code matches error.code"
    );
    assert_eq!(content_type.as_deref(), Some("application/json"));
    (status, code, message)
}

/// A minimal valid chat body.
pub const CHAT: &str = r#"{"messages":[{"role":"user","content":"Hi"}]}"#;
