//! The command line: every flag, its environment variable and its help text. Parsing only;
//! checking the values together is `config`'s job.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Makes an OpenAI-compatible inference engine (vLLM, TGI, SGLang, TEI, llama.cpp's server)
/// answer as an Azure AI endpoint: Azure clients (azure-ai-inference, AzureOpenAI, LangChain,
/// curl) work against it unchanged.
#[derive(Debug, Parser)]
#[command(name = "azure-openai-proxy", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on. Without an API key the proxy listens on 127.0.0.1 only, unless
    /// --allow-unauthenticated is given.
    #[arg(long, env = "AOP_HOST")]
    pub host: Option<String>,

    /// Port to listen on.
    #[arg(long, env = "AOP_PORT", default_value_t = 80)]
    pub port: u16,

    /// Base URL of the OpenAI-compatible engine, e.g. http://127.0.0.1:8080 (its routes are
    /// under /v1). Default: http://127.0.0.1:8080, or --upstream-host/--upstream-port.
    #[arg(long, env = "AOP_UPSTREAM_URL", conflicts_with_all = ["upstream_host", "upstream_port"])]
    pub upstream_url: Option<String>,

    /// TOML file declaring several engines, their replicas and deployments (see README).
    #[arg(long, env = "AOP_CONFIG", conflicts_with_all = ["upstream_url", "upstream_host", "upstream_port", "upstream_api_key"])]
    pub config: Option<PathBuf>,

    /// Engine host (for existing entrypoints; --upstream-url is preferred).
    #[arg(long, env = "AOP_UPSTREAM_HOST")]
    pub upstream_host: Option<String>,

    /// Engine port (for existing entrypoints; --upstream-url is preferred).
    #[arg(long, env = "AOP_UPSTREAM_PORT")]
    pub upstream_port: Option<u16>,

    /// Accepted for compatibility and ignored: one proxy serves chat and embeddings.
    #[arg(long, env = "AOP_UPSTREAM_TYPE", hide_short_help = true)]
    pub upstream_type: Option<String>,

    /// Which engine is behind the proxy; `auto` asks the engine at start-up.
    #[arg(long, env = "AOP_ENGINE", value_enum, default_value_t = EngineArg::Auto)]
    pub engine: EngineArg,

    /// API key clients must send as `api-key: KEY` or `Authorization: Bearer KEY`. Repeatable;
    /// the environment variable takes a comma-separated list.
    #[arg(
        long = "api-key",
        env = "AOP_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// File with API keys, one per line (blank lines and lines starting with # ignored).
    #[arg(long, env = "AOP_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Serve without any API key on a non-loopback address (e.g. behind Azure ML's own
    /// authenticating gateway).
    #[arg(long, env = "AOP_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,

    /// Key sent to the engine as `Authorization: Bearer KEY` (clients' keys are never forwarded).
    #[arg(long, env = "AOP_UPSTREAM_API_KEY", hide_env_values = true)]
    pub upstream_api_key: Option<String>,

    /// Require `api-version` on the root Model Inference routes too (by default they behave like
    /// a serverless endpoint: a missing api-version means the default one).
    #[arg(long, env = "AOP_REQUIRE_API_VERSION")]
    pub require_api_version: bool,

    /// Extra api-version values to accept, comma-separated, besides the published ones.
    #[arg(long, env = "AOP_API_VERSIONS", value_delimiter = ',')]
    pub api_versions: Vec<String>,

    /// What to do with body fields outside the spec when a request has no `extra-parameters`
    /// header (Azure's own default is `error`).
    #[arg(long, env = "AOP_EXTRA_PARAMETERS_DEFAULT", value_enum, default_value_t = ExtraParamsArg::Error)]
    pub extra_parameters_default: ExtraParamsArg,

    /// Model name reported by /info and filled into requests that omit `model`. Default: the
    /// engine's first model from /v1/models.
    #[arg(long, env = "AOP_MODEL_NAME")]
    pub model_name: Option<String>,

    /// Model type reported by /info. Default: what the engine serves (asked at first use).
    #[arg(long, env = "AOP_MODEL_TYPE", value_enum)]
    pub model_type: Option<ModelTypeArg>,

    /// Model provider reported by /info. Default: the organisation in the model id
    /// (`org/name`), else the engine's `owned_by`.
    #[arg(long, env = "AOP_MODEL_PROVIDER")]
    pub model_provider: Option<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "AOP_MAX_BODY_SIZE", default_value_t = 32 * 1024 * 1024)]
    pub max_body_size: usize,

    /// Largest engine answer the proxy reads whole (complete JSON answers, embeddings it
    /// re-encodes), in bytes; larger ones get a 502. Streams are not read whole.
    #[arg(long, env = "AOP_MAX_UPSTREAM_BODY_SIZE", default_value_t = 256 * 1024 * 1024)]
    pub max_upstream_body_size: usize,

    /// Seconds to wait for a TCP connection to the engine.
    #[arg(long, env = "AOP_UPSTREAM_CONNECT_TIMEOUT", default_value_t = 5.0)]
    pub upstream_connect_timeout: f64,

    /// Seconds to wait for the engine's response headers (a long prompt may queue on a busy GPU).
    #[arg(long, env = "AOP_UPSTREAM_HEADERS_TIMEOUT", default_value_t = 600.0)]
    pub upstream_headers_timeout: f64,

    /// Seconds between health checks of each engine replica (a failing replica leaves the
    /// rotation and comes back when it answers again).
    #[arg(long, env = "AOP_HEALTH_CHECK_INTERVAL", default_value_t = 10.0)]
    pub health_check_interval: f64,

    /// Seconds an engine answer (a stream above all) may stay silent between chunks before the
    /// proxy gives up on it: a stream then ends with an error event. Not a whole-request limit,
    /// which would cut long generations.
    #[arg(long, env = "AOP_UPSTREAM_IDLE_TIMEOUT", default_value_t = 300.0)]
    pub upstream_idle_timeout: f64,

    /// How many more rounds of connection attempts (with a short, doubling pause) before a
    /// request to an engine that refuses connections (e.g. while it loads) gets a 503 with
    /// Retry-After.
    #[arg(long, env = "AOP_UPSTREAM_CONNECT_RETRIES", default_value_t = 2)]
    pub upstream_connect_retries: u32,

    /// Requests proxied at once (0: no limit); like Azure ML's max_concurrent_requests_per_instance.
    #[arg(long, env = "AOP_MAX_CONCURRENT_REQUESTS", default_value_t = 0)]
    pub max_concurrent_requests: usize,

    /// Requests that may wait for a slot beyond --max-concurrent-requests; more get a 429.
    #[arg(long, env = "AOP_MAX_QUEUED_REQUESTS", default_value_t = 256)]
    pub max_queued_requests: usize,

    /// Seconds a request may wait in that queue before it gets a 429.
    #[arg(long, env = "AOP_QUEUE_TIMEOUT", default_value_t = 30.0)]
    pub queue_timeout: f64,

    /// Seconds a client has to send its request headers (slowloris defence).
    #[arg(long, env = "AOP_HEADER_READ_TIMEOUT", default_value_t = 30.0)]
    pub header_read_timeout: f64,

    /// Seconds an idle kept-alive client connection stays open between requests.
    #[arg(long, env = "AOP_KEEP_ALIVE_TIMEOUT", default_value_t = 240.0)]
    pub keep_alive_timeout: f64,

    /// Seconds a client has to send its whole request body.
    #[arg(long, env = "AOP_BODY_READ_TIMEOUT", default_value_t = 60.0)]
    pub body_read_timeout: f64,

    /// Most request headers accepted.
    #[arg(long, env = "AOP_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,

    /// Largest request head (request line and headers) accepted, in bytes.
    #[arg(long, env = "AOP_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,

    /// Seconds in-flight requests and streams get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "AOP_SHUTDOWN_TIMEOUT", default_value_t = 30.0)]
    pub shutdown_timeout: f64,

    /// Also serve `GET /metrics` on this port, without an API key (for a cluster-internal
    /// scraper); on the main port /metrics needs a key like every route but the probes.
    #[arg(long, env = "AOP_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// Keep the last N Responses API answers in memory so that `previous_response_id`, GET and
    /// DELETE work (on this replica only). 0: stateless.
    #[arg(long, env = "AOP_RESPONSES_STORE", default_value_t = 0)]
    pub responses_store: usize,

    /// Check the configuration (flags, environment, --config file) and exit: 0 when valid,
    /// 2 with a message naming the flag or line otherwise. Nothing binds.
    #[arg(long)]
    pub check_config: bool,

    /// Threads serving requests (default: the CPUs this process may use). With 1, the proxy
    /// runs on a single-threaded runtime, which costs less per request than a one-worker pool.
    #[arg(long, env = "AOP_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Log format; levels come from RUST_LOG (default `info`).
    #[arg(long, env = "AOP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The engine behind the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// Ask the engine at start-up.
    Auto,
    Vllm,
    Tgi,
    Sglang,
    Tei,
    /// llama.cpp's own server (llama-server).
    Llamacpp,
    /// llama-cpp-python's server.
    LlamaCppPython,
    /// Any other OpenAI-compatible server: only the common routes are assumed.
    Generic,
}

/// `extra-parameters` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExtraParamsArg {
    Error,
    Drop,
    PassThrough,
}

/// Model types of the spec's ModelInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelTypeArg {
    ChatCompletion,
    Embeddings,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
