//! The one error type of the proxy and its single conversion into Azure's error body.
//!
//! Every failure, whoever caused it, leaves the proxy as
//! `{"error": {"code": ..., "message": ..., ...}}` with an `x-ms-error-code` header carrying the
//! same code, the way Azure's endpoints answer. The status is chosen by the failure's source: the
//! client's fault is 4xx, the engine's own errors keep their status, an unreachable or misbehaving
//! engine is 502/503/504. `status()` and `code()` match every variant without a catch-all arm, so
//! a new variant forces a decision.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The header that carries an error answer's code, as Azure sends it.
pub const ERROR_CODE: HeaderName = HeaderName::from_static("x-ms-error-code");

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The `api-version` query parameter is absent.
    #[error("Missing required query parameter: api-version")]
    MissingApiVersion,
    /// The `api-version` query parameter names a version this endpoint does not serve.
    #[error("Unsupported api-version '{given}'. The supported api-versions are: {supported}")]
    UnsupportedApiVersion { given: String, supported: String },
    /// Azure OpenAI's answer to an api-version it does not serve.
    #[error("API version not supported")]
    ApiVersionNotSupported,
    /// An Azure OpenAI deployment (or v1 `model`) the proxy does not serve.
    #[error("The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.")]
    DeploymentNotFound { deployment: String },
    /// The `extra-parameters` header holds a value outside the spec's three.
    #[error("Unexpected EXTRA_PARAMETERS option {given}, expected options are ['error', 'drop', 'pass-through']")]
    InvalidExtraParametersHeader { given: String },
    /// The body has fields outside the spec and `extra-parameters` is `error` (or absent).
    #[error("Extra parameters {names} are not allowed when extra-parameters is not set or set to be 'error'. Set extra-parameters to 'pass-through' to pass to the model.")]
    ExtraParametersNotAllowed { names: String },
    /// The body is not valid JSON, not an object, or has a field of the wrong type or value.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// A parameter the spec allows but this model (engine) does not support: the spec's 422.
    #[error("{message}")]
    UnsupportedParameter { message: String, param: String },
    /// The route exists but the model behind it cannot serve it (e.g. image embeddings).
    #[error("{message}")]
    OperationNotSupported { message: String },
    /// No valid key in `api-key` or `Authorization: Bearer`.
    #[error("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.")]
    Unauthorized,
    /// No route has this path.
    #[error("Resource not found")]
    NotFound,
    /// A stored response that is not (or no longer) kept.
    #[error("{}", if *stateless { format!("Response with id '{id}' not found: this endpoint keeps no responses (start the proxy with --responses-store N).") } else { format!("Response with id '{id}' not found.") })]
    ResponseNotFound { id: String, stateless: bool },
    /// `?model=` names a model the engine does not serve.
    #[error("The model '{model}' is not served by this endpoint.")]
    ModelNotFound { model: String },
    /// The route exists but not for this method.
    #[error("The requested method '{method}' is not allowed for this resource.")]
    MethodNotAllowed { method: String },
    /// The request body is larger than `--max-body-size`.
    #[error("The request body is too large: the limit is {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    /// The client took too long to send its request body.
    #[error("The request body was not received within {seconds} seconds.")]
    RequestTimeout { seconds: f64 },
    /// The client took too long to send its request line and headers (`--header-read-timeout`).
    #[error("The request headers were not received within {seconds} seconds.")]
    HeadTimeout { seconds: f64 },
    /// The request is not valid HTTP/1.1 (bad request line, header, framing or chunk).
    #[error("The request is not valid HTTP/1.1: {detail}")]
    MalformedHttp { detail: &'static str },
    /// The request head is over `--max-header-bytes` or has more than `--max-headers` headers.
    #[error("The request headers are too large: at most {max_headers} headers and {max_bytes} bytes are accepted.")]
    HeadersTooLarge {
        max_headers: usize,
        max_bytes: usize,
    },
    /// The proxy is at `--max-concurrent-requests` and its queue is full (or the wait ran out).
    #[error("Too many requests: {in_flight} are being served and the queue is full. Please retry after 1 second.")]
    TooManyRequests { in_flight: usize },
    /// The engine could not be reached (connection refused, DNS, TLS, reset before any answer).
    #[error("The model backend is unreachable: {detail}")]
    UpstreamUnreachable { detail: String },
    /// The engine did not answer in time.
    #[error("The model backend did not answer in time: {detail}")]
    UpstreamTimeout { detail: String },
    /// The engine answered with something that is not a valid answer.
    #[error("The model backend sent an invalid response: {detail}")]
    UpstreamInvalidResponse { detail: String },
    /// The engine answered with an error status; its status and message are kept.
    #[error("{message}")]
    Upstream {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The engine is loading or down (readiness).
    #[error("The model backend is not ready: {detail}")]
    NotReady { detail: String },
}

/// The codes the proxy itself answers with (any other code in an error answer is the engine's).
pub const PROXY_CODES: &[&str] = &[
    "MissingApiVersionParameter",
    "UnsupportedApiVersion",
    "BadRequest",
    "DeploymentNotFound",
    "InvalidHeaderValue",
    "extra_parameters_not_allowed",
    "UnsupportedParameter",
    "OperationNotSupported",
    "401",
    "404",
    "ModelNotFound",
    "NotFound",
    "MethodNotAllowed",
    "RequestEntityTooLarge",
    "RequestTimeout",
    "RequestHeaderFieldsTooLarge",
    "429",
    "UpstreamUnreachable",
    "UpstreamTimeout",
    "UpstreamInvalidResponse",
    "ServiceUnavailable",
];

impl ApiError {
    /// Shorthand for a 400 about the request body.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    /// Shorthand for a 400 about one named parameter.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingApiVersion
            | ApiError::UnsupportedApiVersion { .. }
            | ApiError::InvalidExtraParametersHeader { .. }
            | ApiError::ExtraParametersNotAllowed { .. }
            | ApiError::InvalidRequest { .. }
            | ApiError::MalformedHttp { .. }
            | ApiError::ApiVersionNotSupported
            | ApiError::OperationNotSupported { .. } => StatusCode::BAD_REQUEST,
            ApiError::DeploymentNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::UnsupportedParameter { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound
            | ApiError::ModelNotFound { .. }
            | ApiError::ResponseNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } | ApiError::HeadTimeout { .. } => {
                StatusCode::REQUEST_TIMEOUT
            }
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UpstreamUnreachable { .. } | ApiError::UpstreamInvalidResponse { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Upstream { status, .. } => *status,
            ApiError::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The Azure error code carried in the body and in `x-ms-error-code`.
    pub fn code(&self) -> &str {
        match self {
            ApiError::MissingApiVersion => "MissingApiVersionParameter",
            ApiError::UnsupportedApiVersion { .. } => "UnsupportedApiVersion",
            ApiError::ApiVersionNotSupported => "BadRequest",
            ApiError::DeploymentNotFound { .. } => "DeploymentNotFound",
            ApiError::InvalidExtraParametersHeader { .. } => "InvalidHeaderValue",
            ApiError::ExtraParametersNotAllowed { .. } => "extra_parameters_not_allowed",
            ApiError::InvalidRequest { .. } => "BadRequest",
            ApiError::UnsupportedParameter { .. } => "UnsupportedParameter",
            ApiError::OperationNotSupported { .. } => "OperationNotSupported",
            ApiError::Unauthorized => "401",
            ApiError::NotFound => "404",
            ApiError::ModelNotFound { .. } => "ModelNotFound",
            ApiError::ResponseNotFound { .. } => "NotFound",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::PayloadTooLarge { .. } => "RequestEntityTooLarge",
            ApiError::RequestTimeout { .. } | ApiError::HeadTimeout { .. } => "RequestTimeout",
            ApiError::MalformedHttp { .. } => "BadRequest",
            ApiError::HeadersTooLarge { .. } => "RequestHeaderFieldsTooLarge",
            ApiError::TooManyRequests { .. } => "429",
            ApiError::UpstreamUnreachable { .. } => "UpstreamUnreachable",
            ApiError::UpstreamTimeout { .. } => "UpstreamTimeout",
            ApiError::UpstreamInvalidResponse { .. } => "UpstreamInvalidResponse",
            ApiError::Upstream { code, .. } => code,
            ApiError::NotReady { .. } => "ServiceUnavailable",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequest { param, .. } => param.as_deref(),
            ApiError::UnsupportedParameter { param, .. } => Some(param),
            _ => None,
        }
    }

    /// The JSON body Azure clients parse: `{"error": {"code", "message", "status", "param"?}}`.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: String,
            status: u16,
            #[serde(skip_serializing_if = "Option::is_none")]
            param: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        let outer = Outer {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                status: self.status().as_u16(),
                param: self.param(),
            },
        };
        // Serialising plain strings and integers into a Vec cannot fail.
        serde_json::to_vec(&outer).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(code) = HeaderValue::from_str(self.code()) {
            headers.insert(ERROR_CODE, code);
        }
        match self {
            ApiError::NotReady { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::TooManyRequests { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                headers.insert("retry-after-ms", HeaderValue::from_static("1000"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_azure_shape_and_header_matches() {
        let err = ApiError::MissingApiVersion;
        let v: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(v["error"]["code"], "MissingApiVersionParameter");
        assert_eq!(v["error"]["status"], 400);
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers()["x-ms-error-code"],
            "MissingApiVersionParameter"
        );
    }

    #[test]
    fn upstream_error_keeps_status_and_message() {
        let err = ApiError::Upstream {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "429".into(),
            message: "slow down".into(),
        };
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        let v: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(v["error"]["message"], "slow down");
    }
}
