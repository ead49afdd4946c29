//! Logging set-up, request ids, and the observer that records each request's metrics and log
//! line. Levels come from `RUST_LOG` (default `info`); the format from `--log-format`. Request
//! bodies, prompts and credentials are never logged.

mod format;
pub mod sink;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::metrics::{find_usage, Metrics, StreamHandles, UpstreamErrorLabels, Usage};
use crate::state::AppState;

/// Where the access lines go, and in which format; set once by `init`. Without it (as in tests
/// that build the router alone) access lines are not written.
static ACCESS_LOG: OnceLock<(sink::Sink, bool)> = OnceLock::new();

/// Installs the global subscriber; later calls (as in tests) are ignored. Lines are written by
/// a background thread, off the request path (see `sink`); keep the returned guard alive until
/// exit so the last lines are written.
pub fn init(format: LogFormat) -> Option<sink::SinkGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (sink, guard) = match sink::Sink::spawn(std::io::stdout()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: no log writer thread ({e}); logging is off");
            return None;
        }
    };
    let json = matches!(format, LogFormat::Json);
    if ACCESS_LOG.set((sink.clone(), json)).is_err() {
        return None;
    }
    // No colour: the access lines have none, and container logs want plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(sink);
    let text = tracing_subscriber::fmt::format().with_target(false);
    let _ = if json {
        builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(format::WithRequestId {
                inner: text.json().flatten_event(true),
                json,
            })
            .try_init()
    } else {
        builder
            .event_format(format::WithRequestId { inner: text, json })
            .try_init()
    };
    Some(guard)
}

thread_local! {
    /// What the handler being polled on this thread has reported (see [`report`]).
    static REPORTED: std::cell::Cell<Option<Forwarded>> = const { std::cell::Cell::new(None) };
}

/// Tells the observer of the request being served what it was forwarded to. The observer takes
/// the report at the end of the same poll of its handler, so no other request (on this thread
/// or another) can come between; a response extension cost three allocations per request.
pub fn report(forwarded: Forwarded) {
    REPORTED.with(|r| r.set(Some(forwarded)));
}

/// What a handler tells the observer about a request it forwarded (see [`report`]).
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The deployment the request went to.
    pub deployment: Arc<str>,
    /// The GenAI operation name (`chat`, `text_completion`, `embeddings`, `responses`).
    pub operation: &'static str,
    /// Time spent waiting on the engine before the answer could start.
    pub upstream_wait: Duration,
    /// Token counts of a complete (non-streamed) answer.
    pub usage: Option<Usage>,
    /// The upstream (by its configured name) that answered.
    pub upstream: Arc<str>,
}

/// Request ids, metrics, and one log line per request, written when its answer ends.
///
/// The id is the client's `x-request-id` when it sent a sane one, else a new UUID. It is set on
/// the request (so `proxy` forwards it to the engine as `x-request-id`), returned as
/// `x-request-id` and `apim-request-id` as Azure does, and carried by every log line of the
/// request. A client's `x-ms-client-request-id` is echoed back. The log line holds method, path
/// (no query), status, deployment, durations and tokens: never the body, the query or any
/// credential.
///
/// In three steps, so that the request and its handler's future stay where the caller put
/// them: [`Observation::begin`] reads the request, [`Observation::watch`] runs the handler
/// (pinned in place by the caller), [`Observation::end`] completes the answer. Moving the
/// request into an observer's own future, and the handler's future into it, cost a copy of
/// each into cold memory per request (callgrind: most of the proxy's cache misses on writes).
pub struct Observation {
    in_flight: InFlight,
    id: HeaderValue,
    client_id: Option<HeaderValue>,
    /// The id lent to log lines written while the handler is polled.
    scoped: Option<HeaderValue>,
    route: Route,
    method: axum::http::Method,
    uri: axum::http::Uri,
    start: Instant,
    forwarded: Option<Forwarded>,
}

impl Observation {
    /// Starts observing `request`: finds or makes its id and sets it on the request.
    pub fn begin(state: &AppState, request: &mut Request, route: Route) -> Observation {
        let start = Instant::now();
        // Both ids in one walk over the few headers a request has: a lookup each would hash
        // both names. The first value of each counts, as `HeaderMap::get` reads it.
        let (mut given_id, mut client_id) = (None, None);
        for (name, value) in request.headers() {
            if *name == REQUEST_ID {
                given_id.get_or_insert(value);
            } else if *name == CLIENT_REQUEST_ID {
                client_id.get_or_insert(value);
            }
        }
        let client_id = client_id.filter(|v| is_sane_id(v)).cloned();
        let id = given_id
            .filter(|v| is_sane_id(v))
            .cloned()
            .unwrap_or_else(new_id);
        request.headers_mut().insert(REQUEST_ID, id.clone());
        let in_flight = InFlight::count(&state.metrics);
        // A report left by a handler no observer wrapped is not this request's.
        drop(REPORTED.with(std::cell::Cell::take));
        Observation {
            in_flight,
            scoped: Some(id.clone()),
            id,
            client_id,
            route,
            method: request.method().clone(),
            // The URI shares the request head's buffer: a clone is a reference count.
            uri: request.uri().clone(),
            start,
            forwarded: None,
        }
    }

    /// Runs the request's handler to its answer; log lines written meanwhile carry the
    /// request's id, and what the handler reports (see [`report`]) is kept.
    pub async fn watch<Fut>(&mut self, mut handling: Pin<&mut Fut>) -> Response
    where
        Fut: Future<Output = Response>,
    {
        std::future::poll_fn(|cx| {
            let polled = format::with_request_id(&mut self.scoped, || handling.as_mut().poll(cx));
            if let Some(f) = REPORTED.with(std::cell::Cell::take) {
                self.forwarded = Some(f);
            }
            polled
        })
        .await
    }

    /// The answer with the request's ids, its body wrapped so that its end is recorded.
    pub fn end(self, mut response: Response) -> Response {
        let Observation {
            in_flight,
            id,
            client_id,
            route,
            method,
            uri,
            start,
            forwarded,
            ..
        } = self;
        let metrics = &in_flight.0;
        let headers_at = Instant::now();
        let status = response.status().as_u16();
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, id.clone());
        headers.insert(APIM_REQUEST_ID, id.clone());
        if let Some(c) = client_id {
            headers.insert(CLIENT_REQUEST_ID, c);
        }
        let is_sse = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        // Only error answers carry an error code.
        let error_code = (status >= 400)
            .then(|| headers.get(&crate::error::ERROR_CODE))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(f) = &forwarded {
            let own = (headers_at - start).saturating_sub(f.upstream_wait);
            metrics.overhead.observe(own.as_secs_f64());
        }
        if let Some(code) = error_code
            .as_deref()
            .and_then(|c| upstream_error_kind(c, status))
        {
            metrics
                .upstream_errors
                .get_or_create(&UpstreamErrorLabels { kind: code })
                .inc();
        }
        let api = match route.as_str() {
            Some("/health" | "/ready" | "/metrics") => "probe",
            Some(r) if r.starts_with("/openai/") => "azure_openai",
            Some(_) => "model_inference",
            None => "other",
        };
        let (deployment, upstream, operation, usage) = match forwarded {
            Some(f) => (f.deployment, f.upstream, Some(f.operation), f.usage),
            None => Default::default(),
        };
        let end = Finish {
            in_flight,
            id: Some(id),
            route,
            api,
            deployment,
            status,
            operation,
            upstream,
            usage,
            stream: None,
            method,
            uri,
            start,
            first_chunk: None,
            last_chunk: None,
            is_sse,
            completed: false,
        };
        response.map(|body| Body::new(Observed { inner: body, end }))
    }
}

/// The route a request matched, for the metrics' `route` label.
#[derive(Debug, Clone)]
pub enum Route {
    /// Matched by the router.
    Matched(MatchedPath),
    /// Matched by the front service's own table.
    Static(&'static str),
    /// No route.
    Unmatched,
}

impl Route {
    fn as_str(&self) -> Option<&str> {
        match self {
            Route::Matched(m) => Some(m.as_str()),
            Route::Static(s) => Some(s),
            Route::Unmatched => None,
        }
    }
}

/// The metric kind of an engine failure, from the answer's error code.
fn upstream_error_kind(code: &str, status: u16) -> Option<String> {
    match code {
        "UpstreamUnreachable"
        | "UpstreamTimeout"
        | "UpstreamInvalidResponse"
        | "ServiceUnavailable" => Some(code.to_owned()),
        _ => None,
    }
    .or_else(|| {
        // Errors that came from the engine itself keep its status.
        let ours = crate::error::PROXY_CODES.contains(&code);
        (!ours && status >= 400).then(|| format!("engine_{}xx", status / 100))
    })
}

/// Counts a request in the in-flight gauge for as long as it lives: from its head to its
/// answer's last byte, or to the moment its client went away, whenever that was (a request
/// dropped before its answer began is counted out too).
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn count(metrics: &Arc<Metrics>) -> InFlight {
        metrics.in_flight.inc();
        InFlight(Arc::clone(metrics))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// What is recorded when an answer's body ends (or its client goes away).
struct Finish {
    in_flight: InFlight,
    /// The request id, lent to the thread while the body is polled.
    id: Option<HeaderValue>,
    route: Route,
    api: &'static str,
    deployment: Arc<str>,
    status: u16,
    /// The stream histograms, found at the first chunk.
    stream: Option<StreamHandles>,
    operation: Option<&'static str>,
    upstream: Arc<str>,
    usage: Option<Usage>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    start: Instant,
    first_chunk: Option<Instant>,
    last_chunk: Option<Instant>,
    is_sse: bool,
    completed: bool,
}

impl Finish {
    fn on_chunk(&mut self, data: &[u8]) {
        if !self.is_sse {
            return;
        }
        let now = Instant::now();
        let (metrics, operation, model) = (&self.in_flight.0, self.operation, &self.deployment);
        let stream = self
            .stream
            .get_or_insert_with(|| metrics.stream(operation.unwrap_or("chat"), model));
        match self.last_chunk {
            None => {
                self.first_chunk = Some(now);
                stream.ttft.observe((now - self.start).as_secs_f64());
            }
            Some(last) => stream.tpot.observe((now - last).as_secs_f64()),
        }
        self.last_chunk = Some(now);
        // The usage chunk (stream_options.include_usage) is the last event before [DONE]; most
        // chunks have none, which one search of the whole chunk tells.
        if !crate::metrics::mentions_usage(data) {
            return;
        }
        for event in data
            .split(|&b| b == b'\n')
            .filter_map(|l| l.strip_prefix(b"data: "))
        {
            if let Some(u) = find_usage(event) {
                self.usage = Some(u);
            }
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let m = &self.in_flight.0;
        let elapsed = self.start.elapsed();
        m.record_request(
            self.route.as_str().unwrap_or("unmatched"),
            self.api,
            &self.deployment,
            self.status,
            elapsed.as_secs_f64(),
        );
        if !self.completed {
            m.client_disconnects.inc();
        }
        if let (Some(op), Some(u)) = (self.operation, self.usage) {
            m.record_usage(op, &self.deployment, u);
        }
        let Some((sink, json)) = ACCESS_LOG.get() else {
            return;
        };
        let probe = self.api == "probe";
        let level = if probe {
            Level::DEBUG
        } else if self.status >= 500 {
            Level::WARN
        } else {
            Level::INFO
        };
        let enabled = match level {
            Level::DEBUG => tracing::enabled!(Level::DEBUG),
            Level::WARN => tracing::enabled!(Level::WARN),
            _ => tracing::enabled!(Level::INFO),
        };
        if !enabled {
            return;
        }
        format::AccessLine {
            level,
            method: self.method.as_str(),
            path: self.uri.path(),
            status: self.status,
            detail: (!probe).then(|| format::AccessDetail {
                deployment: &self.deployment,
                upstream: &self.upstream,
                ttft: self.first_chunk.map(|t| t - self.start),
                prompt_tokens: self.usage.map(|u| u.prompt_tokens),
                completion_tokens: self.usage.map(|u| u.completion_tokens),
                disconnected: !self.completed,
            }),
            elapsed,
            request_id: self.id.as_ref().map_or(&b"-"[..], HeaderValue::as_bytes),
        }
        .write(*json, |line| sink.append(line));
    }
}

/// A response body that reports its chunks and its end to `Finish`.
struct Observed {
    inner: Body,
    end: Finish,
}

impl Drop for Observed {
    fn drop(&mut self) {
        // hyper stops polling a body that says it has ended; that is a complete answer too.
        if http_body::Body::is_end_stream(&self.inner) {
            self.end.completed = true;
        }
    }
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let polled = format::with_request_id(&mut this.end.id, || Pin::new(inner).poll_frame(cx));
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.end.on_chunk(data);
                }
            }
            Poll::Ready(None) => this.end.completed = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// Header names as constants: a name given as `&str` is parsed again on every use.
/// The request id header, sent to the engine too.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The id Azure clients send and expect echoed.
pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");
/// Azure's copy of the request id.
const APIM_REQUEST_ID: HeaderName = HeaderName::from_static("apim-request-id");

fn is_sane_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

fn new_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    // In one shared allocation: the id is cloned into the request and the response, and a
    // copied value's first clone would allocate again. A hyphenated UUID is always a valid
    // header value.
    HeaderValue::from_maybe_shared(Bytes::from_owner(buf))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
