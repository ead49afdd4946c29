//! Logging set-up. Levels come from `RUST_LOG` (default `info`); the format from `--log-format`.
//! Request bodies, prompts and credentials are never logged.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber; later calls (as in tests) are ignored.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Request ids, on every answer, and one log line per request.
///
/// The id is the client's `x-request-id` when it sent a sane one, else a new UUID. It is set on
/// the request (so `proxy` forwards it to the engine as `x-request-id`), returned as
/// `x-request-id` and `apim-request-id` as Azure does, and carried by every log line of the
/// request. A client's `x-ms-client-request-id` is echoed back. The log line holds method, path
/// (no query), status and duration: never the body, the query or any credential.
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| is_sane_id(v))
        .cloned()
        .unwrap_or_else(new_id);
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let client_id = request
        .headers()
        .get(CLIENT_REQUEST_ID)
        .filter(|v| is_sane_id(v))
        .cloned();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", id = %id.to_str().unwrap_or_default());
    let mut response = next.run(request).instrument(span.clone()).await;
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, id.clone());
    headers.insert("apim-request-id", id);
    if let Some(c) = client_id {
        headers.insert(CLIENT_REQUEST_ID, c);
    }
    let status = response.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(%method, %path, status, ms, "request");
        } else {
            tracing::info!(%method, %path, status, ms, "request");
        }
    });
    response
}

/// The request id header, sent to the engine too.
pub const REQUEST_ID: &str = "x-request-id";
/// The id Azure clients send and expect echoed.
pub const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";

fn is_sane_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

fn new_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
