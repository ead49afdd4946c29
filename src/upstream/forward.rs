//! Sending the engine's answer back to the client as it arrives: JSON bodies pass through as
//! bytes, event streams go through the SSE normaliser chunk by chunk. Nothing is buffered, and
//! when the client goes away the response body is dropped, which drops the engine's connection
//! and so stops the generation.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::translate::sse::SseNormalizer;
use crate::upstream::client::{describe, Answer, BodyError, EngineBody, EngineResponse};
use crate::upstream::usage_fill::{self, PromptCount};

/// Whether the engine answered with an event stream.
pub fn is_event_stream<B>(response: &axum::http::Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// The client's response for an engine answer: normalised SSE or the body as it comes. The
/// answer's in-flight count lives inside the body, so it ends when the relaying does.
pub fn relay(answer: Answer) -> Response {
    let Answer {
        response,
        in_flight,
        idle_timeout,
        ..
    } = answer;
    if is_event_stream(&response) {
        let chunks = Chunks::new(response.into_body(), idle_timeout);
        let stream = normalise(chunks).map(move |item| {
            let _held = &in_flight;
            item
        });
        return sse_response(stream);
    }
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/json"));
    let body = Chunks::new(response.into_body(), idle_timeout).map(move |item| {
        let _held = &in_flight;
        item.map_err(|broken| std::io::Error::other(broken.to_string()))
    });
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    out
}

/// How a JSON operation's answer is relayed.
#[derive(Default)]
pub struct RelayJson {
    /// The client asked for a stream (an engine that ignored `stream` gets its answer turned
    /// into one).
    pub wants_stream: bool,
    /// Make the usage chunk the engine will not send, with the prompt count being asked for.
    pub usage_fill: Option<PromptCount>,
    /// Report this model name (the deployment's) instead of the engine's.
    pub report_model: Option<std::sync::Arc<str>>,
    /// The OpenAI `object` of a complete answer (`chat.completion`, `text_completion`, `list`):
    /// fields some engines leave out are completed. `None`: the answer is left as it is.
    pub object: Option<&'static str>,
}

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The client's response for a JSON operation: streams are normalised as they come; a complete
/// answer is read (bounded), checked to be JSON (else 502), and sent as its own bytes, or as an
/// event stream when the client asked for one and the engine ignored `stream`. A complete
/// answer's token counts come back beside the response, for the metrics and the access log.
pub async fn relay_json(
    answer: Answer,
    options: RelayJson,
) -> Result<(Response, Option<crate::metrics::Usage>), ApiError> {
    let Answer {
        mut response,
        in_flight,
        idle_timeout,
        max_body,
    } = answer;
    if is_event_stream(&response) {
        let chunks = Chunks::new(response.into_body(), idle_timeout);
        let mut events: EventStream = Box::pin(normalise(chunks));
        if let Some(model) = options.report_model {
            events =
                Box::pin(events.map(move |item| item.map(|chunk| rename_model(&chunk, &model))));
        }
        if let Some(prompt) = options.usage_fill {
            events = Box::pin(usage_fill::fill(events, prompt));
        }
        let stream = events.map(move |item| {
            let _held = &in_flight;
            item
        });
        return Ok((sse_response(stream), None));
    }
    let status = response.status();
    // The engine's header map becomes the answer's (emptied, its allocation kept): one map
    // fewer to build per request.
    let mut headers = std::mem::take(response.headers_mut());
    let mut body = read_whole(response, idle_timeout, max_body).await?;
    drop(in_flight);
    let invalid = || ApiError::UpstreamInvalidResponse {
        detail: "the engine's answer is not JSON".into(),
    };
    // One pass checks that the answer is JSON, finds its usage for the metrics, and sees
    // whether fields strict clients need are missing.
    let peek = peek_answer(&body).map_err(|_| invalid())?;
    let incomplete = options.object.is_some_and(|object| peek.lacks(object));
    if options.wants_stream || options.report_model.is_some() || incomplete {
        let mut value: serde_json::Value = serde_json::from_slice(&body).map_err(|_| invalid())?;
        if let (Some(model), Some(obj)) = (&options.report_model, value.as_object_mut()) {
            if obj.contains_key("model") {
                obj.insert("model".into(), serde_json::Value::from(&**model));
            }
        }
        if let (Some(object), Some(obj)) = (options.object, value.as_object_mut()) {
            complete_openai_fields(obj, object, options.report_model.as_deref());
        }
        if options.wants_stream {
            let events = crate::translate::sse::completion_as_events(&value).ok_or_else(invalid)?;
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(events) });
            return Ok((sse_response(stream), peek.usage));
        }
        body = Bytes::from(serde_json::to_vec(&value).map_err(|_| invalid())?);
    }
    headers.clear();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok((out, peek.usage))
}

/// What one parse of a complete answer tells.
#[derive(Debug, Default, PartialEq)]
struct AnswerPeek {
    usage: Option<crate::metrics::Usage>,
    /// Whether `id`, `object`, `created`, `model`, `usage` are present (and not null).
    present: [bool; 5],
    /// Whether the answer is a JSON object (only objects are completed).
    object: bool,
}

impl AnswerPeek {
    /// Whether the answer lacks a field strict clients need in an answer of type `object`.
    fn lacks(&self, object: &str) -> bool {
        let [id, obj, created, model, usage] = self.present;
        self.object
            && if object == "list" {
                !(obj && model && usage)
            } else {
                !(id && obj && created && model && usage)
            }
    }
}

/// Reads a complete answer once: `Err` when it is not JSON.
fn peek_answer(body: &[u8]) -> Result<AnswerPeek, crate::translate::raw::SyntaxError> {
    use crate::translate::raw::{key_is, key_position, scan_nested};
    /// The top-level fields looked for (escaped spellings count too).
    const KEYS: [&str; 5] = ["id", "object", "created", "model", "usage"];
    /// The counts read from `usage`.
    const COUNTS: [&str; 2] = ["prompt_tokens", "completion_tokens"];
    let mut peek = AnswerPeek {
        object: body.trim_ascii_start().first() == Some(&b'{'),
        ..AnswerPeek::default()
    };
    let mut seen = [false; 5];
    let mut repeated = false;
    let mut usage_object = false;
    // The usage counts, read in the same pass; `counts_ok` turns false once one is not a
    // non-negative integer or comes twice.
    let mut counts = [None::<u64>; 2];
    let mut counts_ok = true;
    // Where the parent key of the last nested member starts, and whether it is `usage`.
    let mut in_usage = (usize::MAX, false);
    scan_nested(
        body,
        |member| {
            let Some(i) = key_position(&body[member.key], &KEYS) else {
                return;
            };
            repeated |= std::mem::replace(&mut seen[i], true);
            let value = &body[member.value];
            peek.present[i] = value != b"null";
            if i == 4 {
                usage_object = value.first() == Some(&b'{');
            }
        },
        |nested| {
            // Members of one parent come one after another: its key is read once.
            if in_usage.0 != nested.parent.start {
                in_usage = (nested.parent.start, key_is(&body[nested.parent], "usage"));
            }
            if !in_usage.1 {
                return;
            }
            let Some(i) = key_position(&body[nested.key], &COUNTS) else {
                return;
            };
            match crate::wire::parse_u64(&body[nested.value]) {
                Some(n) if counts[i].replace(n).is_none() => {}
                _ => counts_ok = false,
            }
        },
    )?;
    if repeated {
        // An object that repeats one of these fields: valid JSON, passed on as it is.
        return Ok(AnswerPeek::default());
    }
    peek.usage = (usage_object && counts_ok).then(|| crate::metrics::Usage {
        prompt_tokens: counts[0].unwrap_or(0),
        completion_tokens: counts[1].unwrap_or(0),
    });
    Ok(peek)
}

/// Adds what some engines leave out of an OpenAI answer (llama.cpp omits `created` in places,
/// others `usage` or `object`), so that strict clients parse it. Missing usage counts are 0.
pub fn complete_openai_fields(
    obj: &mut serde_json::Map<String, serde_json::Value>,
    object: &'static str,
    model: Option<&str>,
) {
    use serde_json::Value;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if object != "list" {
        obj.entry("id")
            .or_insert_with(|| Value::from(format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())));
        obj.entry("created").or_insert(Value::from(now));
    }
    obj.entry("object").or_insert(Value::from(object));
    obj.entry("model")
        .or_insert_with(|| Value::from(model.unwrap_or_default()));
    let usage = obj
        .entry("usage")
        .or_insert_with(|| serde_json::json!({"prompt_tokens": 0, "total_tokens": 0}));
    if let Some(u) = usage.as_object_mut() {
        if object != "list" {
            u.entry("completion_tokens").or_insert(Value::from(0));
        }
        let total = ["prompt_tokens", "completion_tokens"]
            .iter()
            .filter_map(|k| u.get(*k).and_then(Value::as_u64))
            .sum::<u64>();
        u.entry("prompt_tokens").or_insert(Value::from(0));
        u.entry("total_tokens").or_insert(Value::from(total));
    }
}

/// Reads a whole answer: at most `max_body` bytes (`--max-upstream-body-size`), with no
/// silence longer than `idle` between chunks. An answer that arrives in one chunk (the usual
/// case for a JSON answer) is returned as that chunk, without a copy.
pub async fn read_whole(
    response: EngineResponse,
    idle: Duration,
    max_body: usize,
) -> Result<Bytes, ApiError> {
    let mut engine_body = response.into_body();
    // The usual JSON answer came whole with its head: taken as it is.
    match engine_body.take_whole() {
        Some(whole) if whole.len() <= max_body => return Ok(whole),
        Some(_) => return Err(too_large(max_body)),
        None => {}
    }
    let mut first: Option<Bytes> = None;
    let mut body = Vec::new();
    let mut chunks = Chunks::new(engine_body, idle);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(ApiError::from)?;
        let held = first.as_ref().map_or(0, Bytes::len) + body.len();
        if held + chunk.len() > max_body {
            return Err(too_large(max_body));
        }
        match first.take() {
            None if body.is_empty() => first = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    body.extend_from_slice(&earlier);
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(body)))
}

fn too_large(max_body: usize) -> ApiError {
    ApiError::UpstreamInvalidResponse {
        detail: format!("the answer is larger than {max_body} bytes (--max-upstream-body-size)"),
    }
}

impl Answer {
    /// The whole answer's body, bounded as `read_whole` says.
    pub async fn read_all(self) -> Result<Bytes, ApiError> {
        let body = read_whole(self.response, self.idle_timeout, self.max_body).await?;
        drop(self.in_flight);
        Ok(body)
    }
}

/// Sets `model` in every event of a normalised chunk (whole `data: {...}` events).
fn rename_model(chunk: &Bytes, model: &str) -> Bytes {
    let mut out = bytes::BytesMut::with_capacity(chunk.len() + 32);
    for event in chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let renamed = event
            .strip_prefix(b"data: ")
            .and_then(|data| serde_json::from_slice::<serde_json::Value>(data).ok())
            .and_then(|mut v| {
                let obj = v.as_object_mut()?;
                if !obj.contains_key("model") {
                    return None;
                }
                obj.insert("model".into(), serde_json::Value::from(model));
                Some(v.to_string())
            });
        match renamed {
            Some(json) => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(json.as_bytes());
            }
            None => out.extend_from_slice(event),
        }
        out.extend_from_slice(b"\n\n");
    }
    out.freeze()
}

/// Why an engine's answer stopped before its end.
#[derive(Debug)]
pub enum Broken {
    /// The connection failed (reset, closed, invalid framing).
    Upstream(BodyError),
    /// No chunk arrived within the idle timeout.
    Idle(Duration),
}

/// A stream that broke off is the engine's failure: silence is a timeout, anything else an
/// invalid answer.
impl From<Broken> for ApiError {
    fn from(broken: Broken) -> ApiError {
        let detail = broken.to_string();
        match broken {
            Broken::Idle(_) => ApiError::UpstreamTimeout { detail },
            Broken::Upstream(_) => ApiError::UpstreamInvalidResponse { detail },
        }
    }
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Upstream(e) => write!(f, "the stream broke off: {}", describe(e)),
            Broken::Idle(d) => write!(f, "no data from the engine for {} s", d.as_secs_f64()),
        }
    }
}

/// An engine answer's body as a stream of data chunks that ends with `Broken::Idle` when the
/// engine stays silent longer than `idle`.
///
/// The idle timer is armed only when the body has nothing ready, and is not re-armed for each
/// chunk: a chunk only records its time, and a timer that fires early is pushed back to the
/// last chunk's time plus `idle`. A JSON answer that comes with its headers never touches the
/// timer wheel; a stream touches it about once per `idle`.
pub struct Chunks {
    body: EngineBody,
    idle: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    ended: bool,
}

impl Chunks {
    /// Reads `body` with at most `idle` between chunks.
    pub fn new(body: EngineBody, idle: Duration) -> Self {
        Chunks {
            body,
            idle,
            last: Instant::now(),
            timer: None,
            ended: false,
        }
    }
}

impl Stream for Chunks {
    type Item = Result<Bytes, Broken>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match http_body::Body::poll_frame(Pin::new(&mut this.body), cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => {
                        this.last = Instant::now();
                        return Poll::Ready(Some(Ok(data)));
                    }
                    // Empty chunks and trailers carry nothing to relay.
                    _ => continue,
                },
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(Broken::Upstream(e))));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            let deadline = this.last + this.idle;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= deadline {
                this.ended = true;
                return Poll::Ready(Some(Err(Broken::Idle(this.idle))));
            }
            // Fired for an earlier chunk's deadline: wait for the rest of the silence.
            timer.as_mut().reset(deadline);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// A 200 event-stream response around `stream`.
pub fn sse_response<S>(stream: S) -> Response
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut out = Response::new(Body::from_stream(stream));
    *out.status_mut() = StatusCode::OK;
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    out
}

/// Normalises an engine's event stream; a failure mid-stream ends it with an error event and
/// `[DONE]`, so clients finish cleanly instead of hanging.
pub fn normalise<S>(upstream: S) -> Normalised<S>
where
    S: Stream<Item = Result<Bytes, Broken>> + Send + Unpin + 'static,
{
    Normalised {
        upstream: Some(upstream),
        sse: SseNormalizer::new(),
    }
}

/// The stream [`normalise`] returns. A plain struct polled in place: the engine's stream and the
/// normaliser are not moved in and out of a state value for each chunk.
pub struct Normalised<S> {
    /// `None` once the stream has ended (`[DONE]`, the engine's end, or a failure).
    upstream: Option<S>,
    sse: SseNormalizer,
}

impl<S> Stream for Normalised<S>
where
    S: Stream<Item = Result<Bytes, Broken>> + Send + Unpin + 'static,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return Poll::Ready(None);
            };
            match std::task::ready!(upstream.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => {
                    let out = this.sse.push_bytes(&chunk);
                    if this.sse.is_done() {
                        if let Some(rest) = this.upstream.take() {
                            finish_in_background(rest);
                        }
                        return Poll::Ready(Some(Ok(out)));
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Some(Err(broken)) => {
                    this.upstream = None;
                    let err = ApiError::from(broken);
                    tracing::warn!(error = %err, "engine stream failed");
                    return Poll::Ready(Some(Ok(this.sse.error_event(&err.body()))));
                }
                None => {
                    this.upstream = None;
                    let out = this.sse.finish();
                    return Poll::Ready((!out.is_empty()).then_some(Ok(out)));
                }
            }
        }
    }
}

/// Reads what is left of an engine's stream after `[DONE]` (usually only the end of its chunked
/// encoding), off the client's path, so that its keep-alive connection goes back to the pool.
/// Dropped unread, the connection would be closed, and the next request would pay for a new
/// one: on loopback that showed as about 100 µs more time to first token (bench/run.sh).
pub fn finish_in_background<S, T>(mut upstream: S)
where
    S: Stream<Item = T> + Send + Unpin + 'static,
{
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    if let Poll::Ready(None) = upstream.poll_next_unpin(&mut cx) {
        return;
    }
    tokio::spawn(async move {
        // An engine that keeps sending after [DONE] loses its connection after a while.
        let rest = async { while upstream.next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), rest).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parse_finds_usage_and_missing_fields() {
        let full = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}"#;
        let p = peek_answer(full).unwrap();
        assert_eq!(
            p.usage,
            Some(crate::metrics::Usage {
                prompt_tokens: 2,
                completion_tokens: 3
            })
        );
        assert!(!p.lacks("chat.completion"));
        let no_created =
            br#"{"id":"c","object":"chat.completion","model":"m","usage":{"prompt_tokens":2}}"#;
        assert!(peek_answer(no_created).unwrap().lacks("chat.completion"));
        // A list needs no id or created.
        let list = br#"{"object":"list","data":[],"model":"m","usage":{"prompt_tokens":1}}"#;
        assert!(!peek_answer(list).unwrap().lacks("list"));
        let null_usage = br#"{"object":"list","data":[],"model":"m","usage":null}"#;
        let p = peek_answer(null_usage).unwrap();
        assert!(p.lacks("list") && p.usage.is_none());
        // Not an object: valid, nothing to complete.
        assert!(!peek_answer(b"[1,2]").unwrap().lacks("list"));
        assert!(peek_answer(b"{\"id\":").is_err());
        assert!(peek_answer(b"not json").is_err());
        // Escaped names count; a repeated one leaves the answer as it is.
        let escaped = br#"{"\u0069d":"c","object":"list","model":"m","usage":{"prompt_tokens":1}}"#;
        assert_eq!(
            peek_answer(escaped).unwrap().present,
            [true, true, false, true, true]
        );
        let twice = br#"{"object":"list","object":"list","data":[]}"#;
        assert!(!peek_answer(twice).unwrap().lacks("list"));
        // Bytes that are not UTF-8 inside a string are the engine's to send.
        assert!(peek_answer(b"{\"id\":\"\xff\"}").is_ok());
    }

    /// The usage counts read in the answer's one pass agree with reading the usage object on
    /// its own (`Usage::from_json`), whatever the object holds.
    #[test]
    fn usage_counts_match_reading_the_usage_alone() {
        let usages = [
            r#"{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}"#,
            r#"{"prompt_tokens":2}"#,
            r#"{}"#,
            r#"{"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":1},"prompt_tokens":0}"#,
            r#"{"prompt_tokens":2,"prompt_tokens":2}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":1.5}"#,
            r#"{"prompt_tokens":1e3}"#,
            r#"{"prompt_tokens":"3"}"#,
            r#"{"prompt_tokens":null}"#,
            r#"{"prompt_tokens":18446744073709551615}"#,
            r#"{"prompt_tokens":18446744073709551616}"#,
            r#"{"\u0070rompt_tokens":4}"#,
            r#"{ "prompt_tokens" : 4 , "completion_tokens" : 5 }"#,
            r#"null"#,
            r#"[1]"#,
            r#"5"#,
        ];
        for usage in usages {
            let answer = format!(r#"{{"id":"c","usage":{usage},"x":{{"prompt_tokens":9}}}}"#);
            assert_eq!(
                peek_answer(answer.as_bytes()).unwrap().usage,
                crate::metrics::Usage::from_json(usage.as_bytes()),
                "{usage}"
            );
        }
    }
}
