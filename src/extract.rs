//! Reading the parts of a request the handlers need, with Azure-shaped rejections: the query
//! parameters, the body (bounded by `--max-body-size`), and the client's credentials.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Uri};
use bytes::Bytes;
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
        if let Some(query) = uri.query() {
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                match k.as_ref() {
                    "api-version" => q.api_version = Some(v),
                    "model" => q.model = Some(v),
                    _ => {}
                }
            }
        }
        q
    }
}

/// Reads the whole body, refusing more than `limit` bytes with a 413 and a client slower than
/// `timeout` with a 408.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, body_bytes(headers, body, limit)).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::RequestTimeout {
            seconds: timeout.as_secs(),
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
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return ApiError::PayloadTooLarge { limit };
            }
            source = s.source();
        }
        ApiError::invalid(format!("The request body could not be read: {e}"))
    })
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

fn presented_keys(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    let api_key = headers.get_all("api-key").iter().map(|v| v.as_bytes());
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
