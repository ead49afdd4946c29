//! Raw command-line arguments turned into a checked configuration, before anything binds.
//! Every message names the flag, the value given and what is expected.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::cli::{Args, EngineArg, ExtraParamsArg, LogFormat, ModelTypeArg};
use crate::translate::api_version::ApiVersions;
use crate::translate::extra_params::ExtraParams;
use crate::translate::info::ModelType;
use crate::upstream::engines::Engine;

/// One engine (with its replicas) the proxy forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Name used by deployments and in logs.
    pub name: String,
    /// Base URLs of the replicas, without a trailing slash or `/v1`.
    pub urls: Vec<String>,
    /// Bearer key for the engine.
    pub api_key: Option<String>,
    /// The engine, if configured rather than detected.
    pub engine: Option<Engine>,
}

/// A deployment declared in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentConfig {
    /// The name clients use (in the path or in `model`).
    pub name: String,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    /// The model name the engine knows.
    pub model: String,
    /// The model's type, when declared.
    pub model_type: Option<ModelType>,
}

/// The checked configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// The engines; one from the command line, or several from `--config`.
    pub upstreams: Vec<UpstreamConfig>,
    /// Declared deployments; empty means every model an engine lists is a deployment.
    pub deployments: Vec<DeploymentConfig>,
    /// Keys clients may present; empty means an open endpoint.
    pub api_keys: Vec<String>,
    /// Accepted api-version values on the Model Inference routes.
    pub api_versions: ApiVersions,
    /// Whether the root Model Inference routes require `api-version` too.
    pub require_api_version: bool,
    /// Accepted api-version values on the Azure OpenAI routes.
    pub openai_api_versions: ApiVersions,
    /// Behaviour when a request has no `extra-parameters` header.
    pub extra_parameters_default: ExtraParams,
    /// Overrides for /info and the filled-in `model`.
    pub model_name: Option<String>,
    pub model_type: Option<ModelType>,
    pub model_provider: Option<String>,
    pub max_body_size: usize,
    pub max_upstream_body_size: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_headers_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub health_check_interval: Duration,
    pub upstream_idle_timeout: Duration,
    pub upstream_connect_retries: u32,
    /// 0: no limit.
    pub max_concurrent_requests: usize,
    pub max_queued_requests: usize,
    pub queue_timeout: Duration,
    pub header_read_timeout: Duration,
    /// Longest idle time of a kept-alive client connection between requests.
    pub keep_alive_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// How many Responses API answers are kept (0: none).
    pub responses_store: usize,
    /// Where the key-less metrics listener binds, if any.
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// Threads serving requests (`--worker-threads`); 1 means a single-threaded runtime.
    pub worker_threads: usize,
}

impl Config {
    /// Checks `args`; the error names the offending flag.
    pub fn from_args(args: Args) -> Result<Self, String> {
        let (upstreams, deployments) = match &args.config {
            Some(path) => crate::config_file::load(path)?,
            None => {
                let upstream_api_key = args
                    .upstream_api_key
                    .clone()
                    .filter(|k| !k.trim().is_empty());
                if let Some(key) = &upstream_api_key {
                    if key.chars().any(|c| c.is_control()) {
                        return Err(
                            "--upstream-api-key: the key must not contain control characters"
                                .into(),
                        );
                    }
                }
                let upstream = UpstreamConfig {
                    name: "default".into(),
                    urls: vec![upstream_url(&args)?],
                    api_key: upstream_api_key,
                    engine: engine(args.engine),
                };
                (vec![upstream], Vec::new())
            }
        };
        let mut api_keys: Vec<String> = args
            .api_keys
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        if let Some(path) = &args.api_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--api-key-file: cannot read '{}': {e}", path.display()))?;
            api_keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
            if api_keys.is_empty() {
                return Err(format!(
                    "--api-key-file: '{}' holds no key (one key per line expected)",
                    path.display()
                ));
            }
        }
        for key in &api_keys {
            if key.chars().any(|c| c.is_control() || c == ' ') {
                return Err(
                    "--api-key: a key must not contain spaces or control characters".into(),
                );
            }
        }

        let ip: IpAddr = match &args.host {
            Some(host) => host.parse().map_err(|_| {
                format!("--host: '{host}' is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)")
            })?,
            None if api_keys.is_empty() && !args.allow_unauthenticated => {
                IpAddr::from([127, 0, 0, 1])
            }
            None => IpAddr::from([0, 0, 0, 0]),
        };
        if api_keys.is_empty() && !args.allow_unauthenticated && !ip.is_loopback() {
            return Err(format!(
                "--host {ip}: serving a non-loopback address without any --api-key would open the \
                 endpoint to anyone; set --api-key (or AOP_API_KEYS / --api-key-file), or pass \
                 --allow-unauthenticated to open it on purpose"
            ));
        }

        let mut api_versions = ApiVersions::published();
        let mut openai_api_versions = ApiVersions::azure_openai();
        for v in &args.api_versions {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(format!(
                    "--api-versions: '{v}' is not an api-version (letters, digits, '-' and '.' only)"
                ));
            }
            api_versions.add(v);
            openai_api_versions.add(v);
        }

        let upstream_api_key = args.upstream_api_key.filter(|k| !k.trim().is_empty());
        if let Some(key) = &upstream_api_key {
            if key.chars().any(|c| c.is_control()) {
                return Err(
                    "--upstream-api-key: the key must not contain control characters".into(),
                );
            }
        }

        if args.max_body_size < 1024 {
            return Err(format!(
                "--max-body-size: {} bytes is too small (at least 1024)",
                args.max_body_size
            ));
        }

        Ok(Config {
            listen: SocketAddr::new(ip, args.port),
            upstreams,
            deployments,
            api_keys,
            api_versions,
            openai_api_versions,
            require_api_version: args.require_api_version,
            extra_parameters_default: match args.extra_parameters_default {
                ExtraParamsArg::Error => ExtraParams::Error,
                ExtraParamsArg::Drop => ExtraParams::Drop,
                ExtraParamsArg::PassThrough => ExtraParams::PassThrough,
            },
            model_name: args.model_name.filter(|m| !m.trim().is_empty()),
            model_type: args.model_type.map(|t| match t {
                ModelTypeArg::ChatCompletion => ModelType::ChatCompletion,
                ModelTypeArg::Embeddings => ModelType::Embeddings,
            }),
            model_provider: args.model_provider.filter(|m| !m.trim().is_empty()),
            max_body_size: args.max_body_size,
            max_upstream_body_size: range(
                "--max-upstream-body-size",
                args.max_upstream_body_size,
                1024,
                usize::MAX,
            )?,
            upstream_connect_timeout: seconds(
                "--upstream-connect-timeout",
                args.upstream_connect_timeout,
            )?,
            upstream_headers_timeout: seconds(
                "--upstream-headers-timeout",
                args.upstream_headers_timeout,
            )?,
            shutdown_timeout: seconds("--shutdown-timeout", args.shutdown_timeout)?,
            health_check_interval: seconds("--health-check-interval", args.health_check_interval)?,
            upstream_idle_timeout: seconds("--upstream-idle-timeout", args.upstream_idle_timeout)?,
            upstream_connect_retries: args.upstream_connect_retries.min(10),
            max_concurrent_requests: args.max_concurrent_requests,
            max_queued_requests: args.max_queued_requests,
            queue_timeout: seconds("--queue-timeout", args.queue_timeout)?,
            header_read_timeout: seconds("--header-read-timeout", args.header_read_timeout)?,
            keep_alive_timeout: seconds("--keep-alive-timeout", args.keep_alive_timeout)?,
            body_read_timeout: seconds("--body-read-timeout", args.body_read_timeout)?,
            max_headers: range("--max-headers", args.max_headers, 16, 10_000)?,
            max_header_bytes: range(
                "--max-header-bytes",
                args.max_header_bytes,
                8192,
                16 * 1024 * 1024,
            )?,
            responses_store: args.responses_store,
            worker_threads: match args.worker_threads {
                Some(n) => range("--worker-threads", n, 1, 1024)?,
                // The CPUs this process may run on (taskset, cgroup limits), not the machine's.
                None => std::thread::available_parallelism().map_or(1, usize::from),
            },
            metrics_listen: match args.metrics_port {
                Some(p) if p == args.port => {
                    return Err(format!(
                        "--metrics-port: {p} is also --port; give the metrics their own port"
                    ))
                }
                Some(p) => Some(SocketAddr::new(ip, p)),
                None => None,
            },
            log_format: args.log_format,
        })
    }
}

fn engine(arg: EngineArg) -> Option<Engine> {
    match arg {
        EngineArg::Auto => None,
        EngineArg::Vllm => Some(Engine::Vllm),
        EngineArg::Tgi => Some(Engine::Tgi),
        EngineArg::Sglang => Some(Engine::Sglang),
        EngineArg::Tei => Some(Engine::Tei),
        EngineArg::Llamacpp => Some(Engine::LlamaCpp),
        EngineArg::LlamaCppPython => Some(Engine::LlamaCppPython),
        EngineArg::Generic => Some(Engine::Generic),
    }
}

fn range(flag: &str, value: usize, min: usize, max: usize) -> Result<usize, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{flag}: {value} is out of range ({min} to {max})"))
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    if !value.is_finite() || value <= 0.0 || value > 86_400.0 {
        return Err(format!(
            "{flag}: {value} is not a number of seconds between 0 and 86400"
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

fn upstream_url(args: &Args) -> Result<String, String> {
    let url = match (&args.upstream_url, &args.upstream_host, args.upstream_port) {
        (Some(url), _, _) => url.trim().to_owned(),
        (None, None, None) => "http://127.0.0.1:8080".to_owned(),
        (None, host, port) => {
            let host = host.as_deref().unwrap_or("127.0.0.1");
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            format!("http://{host}:{}", port.unwrap_or(80))
        }
    };
    let flag = if args.upstream_url.is_some() {
        "--upstream-url"
    } else {
        "--upstream-host/--upstream-port"
    };
    base_url(&url).map_err(|e| format!("{flag}: {e}"))
}

/// Checks an engine base URL and normalises it: no trailing slash, no `/v1` suffix.
pub fn base_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("'{url}' is not a URL ({e}); expected e.g. http://127.0.0.1:8080"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "'{url}' must be an http:// or https:// URL with a host"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("'{url}' must not have a query or fragment"));
    }
    // The engine's routes are /v1/...; accept a base given with or without that suffix.
    let mut base = parsed.as_str().trim_end_matches('/').to_owned();
    if base.ends_with("/v1") {
        base.truncate(base.len() - 3);
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(argv: &[&str]) -> Result<Config, String> {
        let mut full = vec!["azure-openai-proxy"];
        full.extend_from_slice(argv);
        Config::from_args(Args::try_parse_from(full).map_err(|e| e.to_string())?)
    }

    #[test]
    fn open_endpoint_needs_explicit_flag() {
        let c = config(&[]).unwrap();
        assert!(c.listen.ip().is_loopback());
        let err = config(&["--host", "0.0.0.0"]).unwrap_err();
        assert!(err.contains("--allow-unauthenticated"), "{err}");
        assert!(config(&["--host", "0.0.0.0", "--allow-unauthenticated"]).is_ok());
        let c = config(&["--api-key", "k1", "--api-key", "k2"]).unwrap();
        assert_eq!(c.listen.ip(), IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.api_keys, ["k1", "k2"]);
    }

    #[test]
    fn upstream_forms() {
        let url = |c: Config| c.upstreams[0].urls[0].clone();
        assert_eq!(url(config(&[]).unwrap()), "http://127.0.0.1:8080");
        let c = config(&["--upstream-url", "http://engine:8000/v1/"]).unwrap();
        assert_eq!(url(c), "http://engine:8000");
        let c = config(&["--upstream-host", "10.0.0.2", "--upstream-port", "81"]).unwrap();
        assert_eq!(url(c), "http://10.0.0.2:81");
        let err = config(&["--upstream-url", "ftp://x"]).unwrap_err();
        assert!(err.contains("--upstream-url"), "{err}");
        let err = config(&["--upstream-url", "not a url"]).unwrap_err();
        assert!(err.contains("--upstream-url"), "{err}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (argv, flag) in [
            (vec!["--host", "nowhere"], "--host"),
            (vec!["--shutdown-timeout=-1"], "--shutdown-timeout"),
            (
                vec!["--upstream-headers-timeout", "0"],
                "--upstream-headers-timeout",
            ),
            (vec!["--max-body-size", "10"], "--max-body-size"),
            (vec!["--api-versions", "bad version"], "--api-versions"),
            (
                vec!["--api-key-file", "/nonexistent/keys"],
                "--api-key-file",
            ),
        ] {
            let err = config(&argv).unwrap_err();
            assert!(err.contains(flag), "{argv:?}: {err}");
        }
    }

    #[test]
    fn extra_api_versions_are_added() {
        let c = config(&["--api-versions", "2026-01-01-preview,2026-02-01"]).unwrap();
        assert!(c.api_versions.contains("2026-01-01-preview"));
        assert!(c.api_versions.contains("2024-05-01-preview"));
    }
}
