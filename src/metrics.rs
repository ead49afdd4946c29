//! Prometheus metrics: every name, label and bucket in one place, and the text exposition.
//!
//! Names follow Prometheus conventions (snake_case, base units, `_total` counters) and, where
//! one exists, the OpenTelemetry GenAI vocabulary (`gen_ai_*`: operation name, request model,
//! token type, time to first token, time per output token). Recording is a few atomic
//! operations per request; families are looked up by their (small) label sets.

use std::sync::atomic::AtomicI64;

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
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts the tokens of one answer's `usage`.
    pub fn record_usage(&self, operation: &'static str, model: &str, usage: Usage) {
        for (kind, n) in [
            ("input", usage.prompt_tokens),
            ("output", usage.completion_tokens),
        ] {
            if n > 0 {
                self.tokens
                    .get_or_create(&TokenLabels {
                        gen_ai_operation_name: operation,
                        gen_ai_request_model: model.to_owned(),
                        gen_ai_token_type: kind,
                    })
                    .inc_by(n);
            }
        }
    }
}

/// Token counts from an engine's `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// Finds a non-null `usage` object in one JSON document (an answer, or one event of a stream).
pub fn find_usage(json: &[u8]) -> Option<Usage> {
    memchr::memmem::find(json, b"\"usage\"")?;
    #[derive(serde::Deserialize)]
    struct WithUsage {
        usage: Option<Usage>,
    }
    serde_json::from_slice::<WithUsage>(json).ok()?.usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_conventional_names() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "/chat/completions".into(),
                api: "model_inference",
                deployment: "m".into(),
                status: 200,
            })
            .inc();
        m.record_usage(
            "chat",
            "m",
            Usage {
                prompt_tokens: 3,
                completion_tokens: 5,
            },
        );
        m.time_to_first_token
            .get_or_create(&GenAiLabels {
                gen_ai_operation_name: "chat",
                gen_ai_request_model: "m".into(),
            })
            .observe(0.01);
        let text = m.encode();
        assert!(text.contains("azure_openai_proxy_requests_total{route=\"/chat/completions\",api=\"model_inference\",deployment=\"m\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("gen_ai_client_token_usage_total{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"m\",gen_ai_token_type=\"output\"} 5"), "{text}");
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
    }
}
