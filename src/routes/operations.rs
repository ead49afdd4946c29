//! The JSON operations (chat, completions, embeddings) of both API surfaces, as one table.
//!
//! They carry nearly all of an endpoint's traffic, so the front service (`App`) matches a POST
//! against this table before the router: a matched request goes straight to `proxy`, without
//! the router's per-request work (its boxed route service cloned, the matched path and URL
//! parameters stored as extensions, the head's `Uri` and `HeaderMap` cloned for extractors).
//! The same table registers these routes in the router too, so that other methods get the
//! router's 405 and both ways run the same function.

use std::borrow::Cow;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::proxy::{self, Op, Surface};
use crate::state::AppState;

/// One JSON operation route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The route as the router writes it (`/openai/deployments/{deployment}/chat/completions`):
    /// the metrics' `route` label.
    pub route: &'static str,
    pub surface: Surface,
    pub op: Op,
}

const fn at(route: &'static str, surface: Surface, op: Op) -> Operation {
    Operation { route, surface, op }
}

/// Where the deployment's segment begins, and its placeholder.
const DEPLOYMENTS: &str = "/openai/deployments/";
const DEPLOYMENT: &str = "{deployment}";

/// Every JSON operation route. Model Inference serves its routes at the root and under the
/// `/models/` and `/api/models/` prefixes of Azure AI Foundry endpoints.
pub const OPERATIONS: &[Operation] = &[
    at("/chat/completions", Surface::ModelInference, Op::Chat),
    at(
        "/models/chat/completions",
        Surface::ModelInference,
        Op::Chat,
    ),
    at(
        "/api/models/chat/completions",
        Surface::ModelInference,
        Op::Chat,
    ),
    at("/embeddings", Surface::ModelInference, Op::Embeddings),
    at(
        "/models/embeddings",
        Surface::ModelInference,
        Op::Embeddings,
    ),
    at(
        "/api/models/embeddings",
        Surface::ModelInference,
        Op::Embeddings,
    ),
    at(
        "/openai/deployments/{deployment}/chat/completions",
        Surface::AzureOpenAi,
        Op::Chat,
    ),
    at(
        "/openai/deployments/{deployment}/completions",
        Surface::AzureOpenAi,
        Op::Completions,
    ),
    at(
        "/openai/deployments/{deployment}/embeddings",
        Surface::AzureOpenAi,
        Op::Embeddings,
    ),
    at("/openai/v1/chat/completions", Surface::V1, Op::Chat),
    at("/openai/v1/completions", Surface::V1, Op::Completions),
    at("/openai/v1/embeddings", Surface::V1, Op::Embeddings),
];

impl Operation {
    /// Whether `path` is this route; for a deployment route, the deployment's segment as sent
    /// (still percent-encoded). `Some(None)`: a match without a deployment.
    fn matches<'p>(&self, path: &'p str) -> Option<Option<&'p str>> {
        // Plain prefix and suffix comparisons: `split_once` with a string pattern would set up
        // a substring searcher per route and request.
        match self.route.strip_prefix(DEPLOYMENTS) {
            None => (path == self.route).then_some(None),
            Some(suffix) => {
                let suffix = suffix.strip_prefix(DEPLOYMENT).unwrap_or(suffix);
                let segment = path.strip_prefix(DEPLOYMENTS)?.strip_suffix(suffix)?;
                // As the router: one non-empty segment.
                (!segment.is_empty() && !segment.contains('/')).then_some(Some(segment))
            }
        }
    }
}

/// The operation `path` names, with its deployment's raw segment.
pub fn find(path: &str) -> Option<(Operation, Option<&str>)> {
    // Every operation route ends with one of these: most other paths are refused at once.
    if !(path.ends_with("completions") || path.ends_with("embeddings")) {
        return None;
    }
    OPERATIONS
        .iter()
        .find_map(|o| o.matches(path).map(|d| (*o, d)))
}

/// Serves a request `find` matched to `operation` (auth, limits and the observer are the
/// caller's).
pub async fn serve(state: &AppState, operation: Operation, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let deployment = match operation.matches(parts.uri.path()) {
        Some(Some(raw)) => match decode(raw) {
            Ok(d) => Some(d),
            Err(e) => return e.into_response(),
        },
        _ => None,
    };
    proxy::json_request(
        state,
        operation.surface,
        operation.op,
        deployment.as_deref(),
        &parts.uri,
        &parts.headers,
        body,
    )
    .await
    .into_response()
}

/// A percent-decoded path segment; an Azure 400 when it is not UTF-8.
fn decode(raw: &str) -> Result<Cow<'_, str>, ApiError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| {
            ApiError::invalid(
                "The deployment name in the URL is not valid UTF-8 once percent-decoded.",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_operations_as_the_router_would() {
        let (o, d) = find("/chat/completions").unwrap();
        assert_eq!(
            (o.surface, o.op, d),
            (Surface::ModelInference, Op::Chat, None)
        );
        let (o, d) = find("/openai/deployments/my%20gpt/chat/completions").unwrap();
        assert_eq!(o.route, "/openai/deployments/{deployment}/chat/completions");
        assert_eq!(d, Some("my%20gpt"));
        let (o, _) = find("/openai/deployments/x/completions").unwrap();
        assert_eq!(o.op, Op::Completions);
        assert_eq!(find("/api/models/embeddings").unwrap().0.op, Op::Embeddings);
        assert_eq!(
            find("/openai/v1/embeddings").unwrap().0.surface,
            Surface::V1
        );
        for other in [
            "/chat/completions/",
            "/openai/deployments//chat/completions",
            "/openai/deployments/a/b/chat/completions",
            "/openai/deployments/x/audio/transcriptions",
            "/images/embeddings",
            "/v1/chat/completions",
            "/health",
        ] {
            assert!(find(other).is_none(), "{other}");
        }
        assert_eq!(decode("my%20gpt").unwrap(), "my gpt");
        assert!(decode("%ff").is_err());
    }
}
