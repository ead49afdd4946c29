//! Prometheus metrics: every name, label and bucket in one place, and the text exposition.
//!
//! Names follow Prometheus conventions (snake_case, base units, `_total` counters) and, where
//! one exists, the OpenTelemetry GenAI vocabulary (`gen_ai_*`: operation name, request model,
//! token type, time to first token, time per output token). Recording is a few atomic
//! operations per request; families are looked up by their (small) label sets.

use std::sync::atomic::AtomicI64;
use std::sync::RwLock;

use hashbrown::{Equivalent, HashMap};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, e.g. `/openai/deployments/{deployment}/chat/completions`.
    pub route: String,
    /// `model_inference`, `azure_openai`, `probe`, or `other`.
    pub api: &'static str,
    /// The deployment (or model) the request went to; empty when none.
    pub deployment: String,
    /// The HTTP status code.
    pub status: u16,
}

/// [`RequestLabels`] borrowed: finds a request's metrics without building owned labels.
/// Fields in the same order and of the same hash as `RequestLabels`'.
#[derive(Hash)]
struct RequestLabelsRef<'a> {
    route: &'a str,
    api: &'static str,
    deployment: &'a str,
    status: u16,
}

impl Equivalent<RequestLabels> for RequestLabelsRef<'_> {
    fn equivalent(&self, key: &RequestLabels) -> bool {
        self.route == key.route
            && self.api == key.api
            && self.deployment == key.deployment
            && self.status == key.status
    }
}

/// [`GenAiLabels`] borrowed.
#[derive(Hash)]
struct GenAiLabelsRef<'a> {
    gen_ai_operation_name: &'static str,
    gen_ai_request_model: &'a str,
}

impl Equivalent<GenAiLabels> for GenAiLabelsRef<'_> {
    fn equivalent(&self, key: &GenAiLabels) -> bool {
        self.gen_ai_operation_name == key.gen_ai_operation_name
            && self.gen_ai_request_model == key.gen_ai_request_model
    }
}

/// [`TokenLabels`] borrowed.
#[derive(Hash)]
struct TokenLabelsRef<'a> {
    gen_ai_operation_name: &'static str,
    gen_ai_request_model: &'a str,
    gen_ai_token_type: &'static str,
}

impl Equivalent<TokenLabels> for TokenLabelsRef<'_> {
    fn equivalent(&self, key: &TokenLabels) -> bool {
        self.gen_ai_operation_name == key.gen_ai_operation_name
            && self.gen_ai_request_model == key.gen_ai_request_model
            && self.gen_ai_token_type == key.gen_ai_token_type
    }
}

/// The counter and histogram of one request label set.
#[derive(Clone, Debug)]
struct RequestHandles {
    count: Counter,
    duration: Histogram,
}

/// One deployment's stream histograms, looked up once per stream.
#[derive(Clone, Debug)]
pub struct StreamHandles {
    /// Time to first token.
    pub ttft: Histogram,
    /// Time between chunks.
    pub tpot: Histogram,
}

/// Labels of GenAI measurements.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GenAiLabels {
    /// `chat`, `text_completion`, `embeddings`, `responses`.
    pub gen_ai_operation_name: &'static str,
    /// The deployment the client asked for.
    pub gen_ai_request_model: String,
}

/// Labels of token counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_request_model: String,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
}

/// Labels of engine failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// The error code: `UpstreamUnreachable`, `UpstreamTimeout`, `UpstreamInvalidResponse`,
    /// `ServiceUnavailable`, or the engine's own status for its errors (`engine_5xx`, `engine_4xx`).
    pub kind: String,
}

/// Labels of a replica.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub upstream: String,
    pub replica: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 16,
    ))
}

fn fine_buckets() -> Histogram {
    // 10 µs to ~0.3 s: the proxy's own overhead and the gaps between tokens.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00001, 2.0, 15,
    ))
}

/// Every metric of the proxy.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Histograms<RequestLabels>,
    pub in_flight: Gauge<i64, AtomicI64>,
    pub queued: Gauge<i64, AtomicI64>,
    pub client_disconnects: Counter,
    pub overhead: Histogram,
    pub time_to_first_token: Histograms<GenAiLabels>,
    pub time_per_output_token: Histograms<GenAiLabels>,
    pub tokens: Family<TokenLabels, Counter>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub replica_healthy: Family<ReplicaLabels, Gauge<i64, AtomicI64>>,
    // Handles by label set, found with borrowed labels and a fast hash: the families'
    // own maps need owned labels (allocations) and hash them with SipHash, twice per request.
    request_handles: RwLock<HashMap<RequestLabels, RequestHandles>>,
    stream_handles: RwLock<HashMap<GenAiLabels, StreamHandles>>,
    token_handles: RwLock<HashMap<TokenLabels, Counter>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration: Histograms<RequestLabels> =
            Family::new_with_constructor(latency_buckets);
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let queued = Gauge::<i64, AtomicI64>::default();
        let client_disconnects = Counter::default();
        let overhead = fine_buckets();
        let time_to_first_token: Histograms<GenAiLabels> =
            Family::new_with_constructor(latency_buckets);
        let time_per_output_token: Histograms<GenAiLabels> =
            Family::new_with_constructor(fine_buckets);
        let tokens = Family::<TokenLabels, Counter>::default();
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let replica_healthy = Family::<ReplicaLabels, Gauge<i64, AtomicI64>>::default();

        let p = "azure_openai_proxy";
        registry.register(
            format!("{p}_requests"),
            "Requests answered, by route, API, deployment and status",
            requests.clone(),
        );
        registry.register_with_unit(
            format!("{p}_request_duration"),
            "Time from the request's arrival to the end of its answer (the last byte of a stream)",
            Unit::Seconds,
            request_duration.clone(),
        );
        registry.register(
            format!("{p}_requests_in_flight"),
            "Requests being answered now",
            in_flight.clone(),
        );
        registry.register(
            format!("{p}_requests_queued"),
            "Requests waiting for a --max-concurrent-requests slot",
            queued.clone(),
        );
        registry.register(
            format!("{p}_client_disconnects"),
            "Answers the client stopped reading before their end",
            client_disconnects.clone(),
        );
        registry.register_with_unit(
            format!("{p}_overhead"),
            "The proxy's own time per request: time to the answer's headers minus time spent waiting on the engine",
            Unit::Seconds,
            overhead.clone(),
        );
        registry.register(
            format!("{p}_upstream_errors"),
            "Engine failures by kind",
            upstream_errors.clone(),
        );
        registry.register(
            format!("{p}_upstream_replica_healthy"),
            "1 when a replica is in rotation, 0 when out",
            replica_healthy.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from the request's arrival to the first chunk of a streamed answer",
            Unit::Seconds,
            time_to_first_token.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_per_output_token",
            "Time between consecutive chunks of a streamed answer",
            Unit::Seconds,
            time_per_output_token.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens reported by the engine's usage, by type",
            tokens.clone(),
        );

        Metrics {
            registry,
            requests,
            request_duration,
            in_flight,
            queued,
            client_disconnects,
            overhead,
            time_to_first_token,
            time_per_output_token,
            tokens,
            upstream_errors,
            replica_healthy,
            request_handles: RwLock::default(),
            stream_handles: RwLock::default(),
            token_handles: RwLock::default(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a finished request and records its duration.
    pub fn record_request(
        &self,
        route: &str,
        api: &'static str,
        deployment: &str,
        status: u16,
        seconds: f64,
    ) {
        let key = RequestLabelsRef {
            route,
            api,
            deployment,
            status,
        };
        let found = read(&self.request_handles).get(&key).cloned();
        let handles = found.unwrap_or_else(|| {
            let labels = RequestLabels {
                route: route.to_owned(),
                api,
                deployment: deployment.to_owned(),
                status,
            };
            let h = RequestHandles {
                count: self.requests.get_or_create(&labels).clone(),
                duration: self.request_duration.get_or_create(&labels).clone(),
            };
            write(&self.request_handles).insert(labels, h.clone());
            h
        });
        handles.count.inc();
        handles.duration.observe(seconds);
    }

    /// The stream histograms of one operation on one deployment.
    pub fn stream(&self, operation: &'static str, model: &str) -> StreamHandles {
        let key = GenAiLabelsRef {
            gen_ai_operation_name: operation,
            gen_ai_request_model: model,
        };
        if let Some(h) = read(&self.stream_handles).get(&key) {
            return h.clone();
        }
        let labels = GenAiLabels {
            gen_ai_operation_name: operation,
            gen_ai_request_model: model.to_owned(),
        };
        let h = StreamHandles {
            ttft: self.time_to_first_token.get_or_create(&labels).clone(),
            tpot: self.time_per_output_token.get_or_create(&labels).clone(),
        };
        write(&self.stream_handles).insert(labels, h.clone());
        h
    }

    /// Counts the tokens of one answer's `usage`.
    pub fn record_usage(&self, operation: &'static str, model: &str, usage: Usage) {
        for (kind, n) in [
            ("input", usage.prompt_tokens),
            ("output", usage.completion_tokens),
        ] {
            if n == 0 {
                continue;
            }
            let key = TokenLabelsRef {
                gen_ai_operation_name: operation,
                gen_ai_request_model: model,
                gen_ai_token_type: kind,
            };
            let found = read(&self.token_handles).get(&key).cloned();
            let counter = found.unwrap_or_else(|| {
                let labels = TokenLabels {
                    gen_ai_operation_name: operation,
                    gen_ai_request_model: model.to_owned(),
                    gen_ai_token_type: kind,
                };
                let c = self.tokens.get_or_create(&labels).clone();
                write(&self.token_handles).insert(labels, c.clone());
                c
            });
            counter.inc_by(n);
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Token counts from an engine's `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

impl Usage {
    /// Reads a `usage` object's counts (`None` unless it is an object whose counts, where
    /// present, are non-negative integers, each given once).
    pub fn from_json(value: &[u8]) -> Option<Usage> {
        let text = std::str::from_utf8(value).ok()?;
        Usage::from_raw(crate::translate::raw::Raw::parse(text).ok()?)
    }

    /// Like [`Usage::from_json`], for a value already checked.
    pub fn from_raw(raw: crate::translate::raw::Raw<'_>) -> Option<Usage> {
        if !raw.get().starts_with('{') {
            return None;
        }
        let (mut prompt, mut completion) = (None, None);
        for (key, value) in raw.members() {
            let slot = match key.as_ref() {
                "prompt_tokens" => &mut prompt,
                "completion_tokens" => &mut completion,
                _ => continue,
            };
            if slot.replace(value.get().parse::<u64>().ok()?).is_some() {
                return None;
            }
        }
        Some(Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
        })
    }
}

static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));

/// Whether `bytes` contain a `"usage"` key (or string) at all.
pub fn mentions_usage(bytes: &[u8]) -> bool {
    USAGE.find(bytes).is_some()
}

/// Finds a non-null `usage` object in one JSON document (an answer, or one event of a stream).
pub fn find_usage(json: &[u8]) -> Option<Usage> {
    use crate::translate::raw::{key_is, scan, Raw};
    USAGE.find(json)?;
    let (mut usage, mut repeated) = (None, false);
    scan(json, |m| {
        if key_is(&json[m.key], "usage") {
            repeated |= usage.replace(m.value).is_some();
        }
    })
    .ok()?;
    let value = &json[usage.filter(|_| !repeated)?];
    if value == b"null" {
        return None;
    }
    Usage::from_raw(Raw::checked(std::str::from_utf8(value).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_conventional_names() {
        let m = Metrics::new();
        // Twice through the handle cache, once for another deployment.
        for deployment in ["m", "m", "other"] {
            m.record_request(
                "/chat/completions",
                "model_inference",
                deployment,
                200,
                0.01,
            );
        }
        for _ in 0..2 {
            m.record_usage(
                "chat",
                "m",
                Usage {
                    prompt_tokens: 3,
                    completion_tokens: 5,
                },
            );
        }
        m.stream("chat", "m").ttft.observe(0.01);
        let text = m.encode();
        assert!(text.contains("azure_openai_proxy_requests_total{route=\"/chat/completions\",api=\"model_inference\",deployment=\"m\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("azure_openai_proxy_requests_total{route=\"/chat/completions\",api=\"model_inference\",deployment=\"other\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("azure_openai_proxy_request_duration_seconds_count{route=\"/chat/completions\",api=\"model_inference\",deployment=\"m\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("gen_ai_client_token_usage_total{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"m\",gen_ai_token_type=\"output\"} 10"), "{text}");
        assert!(
            text.contains("# TYPE gen_ai_server_time_to_first_token_seconds histogram"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn usage_is_found_only_when_present() {
        assert_eq!(
            find_usage(br#"{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":7,"total_tokens":9}}"#),
            Some(Usage { prompt_tokens: 2, completion_tokens: 7 })
        );
        assert_eq!(find_usage(br#"{"choices":[],"usage":null}"#), None);
        assert_eq!(find_usage(br#"{"choices":[]}"#), None);
        assert_eq!(find_usage(b"not json \"usage\""), None);
        // As serde_json reads a struct with one `usage` field: a repeated one is an error, a
        // nested one is not the document's.
        assert_eq!(find_usage(br#"{"usage":{},"usage":{}}"#), None);
        assert_eq!(find_usage(br#"{"x":{"usage":{"prompt_tokens":1}}}"#), None);
        assert_eq!(
            find_usage(br#"{"usage":{"prompt_tokens":1},"choices":[1,}"#),
            None
        );
    }

    #[test]
    fn usage_counts_are_read_as_serde_json_reads_them() {
        for doc in [
            r#"{"prompt_tokens":2,"completion_tokens":7,"total_tokens":9}"#,
            r#"{"prompt_tokens":2}"#,
            r#"{}"#,
            r#"{"prompt_tokens":2.0}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":null}"#,
            r#"{"prompt_tokens":"2"}"#,
            r#"{"prompt_tokens":1e2}"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"prompt_tokens":18446744073709551616}"#,
            r#"{"x":{"prompt_tokens":5},"completion_tokens":3}"#,
            r#"null"#,
            r#"{"prompt_tokens":1"#,
        ] {
            let serde = serde_json::from_str::<Usage>(doc).ok();
            assert_eq!(Usage::from_json(doc.as_bytes()), serde, "{doc}");
        }
        // serde's derive also reads a struct from an array; a usage array is no usage.
        assert_eq!(Usage::from_json(b"[1]"), None);
    }
}
