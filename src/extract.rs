//! Reading the parts of a request the handlers need, with Azure-shaped rejections: the query
//! parameters, the body (bounded by `--max-body-size`), and the client's credentials.

use std::borrow::Cow;
use std::future::Future;
use std::task::Poll;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, Uri};
use bytes::Bytes;
use http_body::Body as _;
use http_body_util::BodyExt;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// The query parameters the Azure routes read, borrowed from the URI unless they were encoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AzureQuery<'a> {
    /// `api-version`, if given.
    pub api_version: Option<Cow<'a, str>>,
    /// `model` (on `/info`), if given.
    pub model: Option<Cow<'a, str>>,
}

impl<'a> AzureQuery<'a> {
    /// Reads the query string; unknown parameters are ignored, as Azure does.
    pub fn from_uri(uri: &'a Uri) -> Self {
        let mut q = AzureQuery::default();
        for (k, v) in pairs(uri.query().unwrap_or_default()) {
            match k.as_ref() {
                "api-version" => q.api_version = Some(v),
                "model" => q.model = Some(v),
                _ => {}
            }
        }
        q
    }
}

/// The query's `name=value` pairs as `application/x-www-form-urlencoded` reads them (the last
/// of a repeated name wins in `from_uri`). A pair without `%` or `+` is borrowed as it is,
/// which is nearly every pair; only the others go through the decoder.
fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    // One pass over each pair's bytes finds its end, its `=` and whether it needs decoding
    // (a query is a few dozen bytes: the generic string searches cost more than the bytes).
    let mut rest = query;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (mut end, mut eq, mut encoded) = (rest.len(), None, false);
        for (i, b) in rest.bytes().enumerate() {
            match b {
                b'&' => {
                    end = i;
                    break;
                }
                b'=' if eq.is_none() => eq = Some(i),
                b'%' | b'+' => encoded = true,
                _ => {}
            }
        }
        // `&` and `=` are ASCII, so these are character boundaries.
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        if pair.is_empty() {
            continue;
        }
        if encoded {
            if let Some(decoded) = form_urlencoded::parse(pair.as_bytes()).next() {
                return Some(decoded);
            }
        }
        let (k, v) = match eq {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        return Some((Cow::Borrowed(k), Cow::Borrowed(v)));
    })
}

/// Reads the whole body, refusing more than `limit` bytes with a 413 and a client slower than
/// `timeout` with a 408.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    // Most bodies arrive with their head: the first poll finds them whole, and only a body
    // still on its way reads the clock and arms the timer.
    let mut read = std::pin::pin!(body_bytes(headers, body, limit));
    let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
    if let Poll::Ready(r) = first {
        return r;
    }
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::RequestTimeout {
            seconds: timeout.as_secs_f64(),
        }),
    }
}

/// Reads the whole body, refusing more than `limit` bytes with a 413.
pub async fn body_bytes(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let unreadable =
        |e: axum::Error| ApiError::invalid(format!("The request body could not be read: {e}"));
    let too_large = || ApiError::PayloadTooLarge { limit };
    let mut body = body;
    // Most bodies are one frame: returned as they are, without a collecting buffer.
    let first = match body.frame().await {
        None => return Ok(Bytes::new()),
        Some(frame) => frame.map_err(unreadable)?.into_data().unwrap_or_default(),
    };
    if first.len() > limit {
        return Err(too_large());
    }
    if body.is_end_stream() {
        return Ok(first);
    }
    // Sized once for what the client declared (bounded by `limit` above).
    let mut whole =
        bytes::BytesMut::with_capacity(declared.map_or(first.len() * 2, |n| n as usize));
    whole.extend_from_slice(&first);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(unreadable)?.into_data() else {
            continue; // trailers
        };
        if whole.len() + data.len() > limit {
            return Err(too_large());
        }
        whole.extend_from_slice(&data);
    }
    Ok(whole.freeze())
}

/// Routes reachable without a key: the platform's probes.
const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// Requires a configured key in `api-key` or `Authorization: Bearer` on every route but the
/// probes. Keys are compared in constant time; a refused request never reaches the engine.
pub fn check_key(state: &AppState, request: &Request) -> Result<(), ApiError> {
    let keys = &state.config.api_keys;
    if keys.is_empty()
        || OPEN_PATHS.contains(&request.uri().path())
        || presented_keys(request.headers()).any(|k| matches_any(k, keys))
    {
        return Ok(());
    }
    Err(ApiError::Unauthorized)
}

/// The Azure key header (a constant: a name given as `&str` is parsed again on every lookup).
pub const API_KEY: HeaderName = HeaderName::from_static("api-key");

fn presented_keys(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    let api_key = headers.get_all(API_KEY).iter().map(|v| v.as_bytes());
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| {
            let v = v.as_bytes();
            (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| v[7..].trim_ascii())
        });
    api_key.map(<[u8]>::trim_ascii).chain(bearer)
}

/// Compares against every key without stopping early.
fn matches_any(presented: &[u8], keys: &[String]) -> bool {
    keys.iter().fold(false, |found, key| {
        let equal: bool = key.as_bytes().ct_eq(presented).into();
        found | equal
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    proptest::proptest! {
        #[test]
        fn query_pairs_read_as_the_form_decoder_reads_them(
            query in "([a-z%+=&2-4A-F-]{0,12}){0,4}",
        ) {
            let ours: Vec<_> = pairs(&query).collect();
            let theirs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn query_parsing() {
        let uri: Uri = "/info?api-version=2024-05-01-preview&model=a%2Fb&x=1"
            .parse()
            .unwrap();
        let q = AzureQuery::from_uri(&uri);
        assert_eq!(q.api_version.as_deref(), Some("2024-05-01-preview"));
        assert_eq!(q.model.as_deref(), Some("a/b"));
        assert_eq!(
            AzureQuery::from_uri(&"/info".parse().unwrap()),
            AzureQuery::default()
        );
    }

    #[test]
    fn keys_from_both_headers() {
        let keys = vec!["secret".to_owned()];
        let mut h = HeaderMap::new();
        h.insert("api-key", HeaderValue::from_static("secret"));
        assert!(presented_keys(&h).any(|k| matches_any(k, &keys)));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer secret"),
        );
        assert!(presented_keys(&h).any(|k| matches_any(k, &keys)));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic secret"),
        );
        h.insert("api-key", HeaderValue::from_static("secre"));
        assert!(!presented_keys(&h).any(|k| matches_any(k, &keys)));
    }
}
