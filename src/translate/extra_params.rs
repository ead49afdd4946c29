//! The `extra-parameters` request header: what happens to body fields the spec does not define.

use axum::http::{HeaderMap, HeaderName};

use crate::error::ApiError;
use crate::translate::body::JsonBody;

/// The Model Inference header that says what to do with fields the API does not define.
pub const EXTRA_PARAMETERS: HeaderName = HeaderName::from_static("extra-parameters");

/// The spec's three behaviours for fields outside the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraParams {
    /// Reject the request, naming the fields (Azure's default).
    Error,
    /// Remove the fields and forward the rest.
    Drop,
    /// Forward the fields to the model unchanged.
    PassThrough,
}

impl ExtraParams {
    /// Reads the header; absent means `default`, an unknown value is a 400 naming the valid ones.
    pub fn from_headers(headers: &HeaderMap, default: ExtraParams) -> Result<Self, ApiError> {
        let Some(value) = headers.get(&EXTRA_PARAMETERS) else {
            return Ok(default);
        };
        match value.to_str().map(str::trim) {
            Ok("error") => Ok(ExtraParams::Error),
            Ok("drop") => Ok(ExtraParams::Drop),
            Ok("pass-through") | Ok("pass_through") => Ok(ExtraParams::PassThrough),
            Ok(other) => Err(ApiError::InvalidExtraParametersHeader {
                given: other.chars().take(64).collect(),
            }),
            Err(_) => Err(ApiError::InvalidExtraParametersHeader {
                given: String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(64)
                    .collect(),
            }),
        }
    }

    /// Applies the mode to `body` given the fields the spec knows. Returns whether the body
    /// changed (so must be written out again).
    pub fn apply(self, body: &mut JsonBody<'_>, known: &[&str]) -> Result<bool, ApiError> {
        if self == ExtraParams::PassThrough {
            return Ok(false);
        }
        let unknown: Vec<String> = body
            .names()
            .filter(|n| !known.contains(n))
            .map(str::to_owned)
            .collect();
        if unknown.is_empty() {
            return Ok(false);
        }
        match self {
            ExtraParams::Error => Err(ApiError::ExtraParametersNotAllowed {
                names: format!("{unknown:?}").replace('"', "'"),
            }),
            ExtraParams::Drop => {
                let names: Vec<&str> = unknown.iter().map(String::as_str).collect();
                Ok(body.remove_all(&names))
            }
            ExtraParams::PassThrough => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn header_values() {
        let mut h = HeaderMap::new();
        assert_eq!(
            ExtraParams::from_headers(&h, ExtraParams::Drop).unwrap(),
            ExtraParams::Drop
        );
        h.insert("extra-parameters", HeaderValue::from_static("pass-through"));
        assert_eq!(
            ExtraParams::from_headers(&h, ExtraParams::Error).unwrap(),
            ExtraParams::PassThrough
        );
        h.insert("extra-parameters", HeaderValue::from_static("allow"));
        let err = ExtraParams::from_headers(&h, ExtraParams::Error).unwrap_err();
        assert!(err.to_string().contains("pass-through"));
    }

    #[test]
    fn modes() {
        let known = ["messages", "model"];
        let src = br#"{"messages":[],"top_k":5,"model":"m","typical_p":0.5}"#;

        let mut b = JsonBody::parse(src).unwrap();
        let err = ExtraParams::Error
            .apply(&mut b, &known)
            .unwrap_err()
            .to_string();
        assert!(err.contains("['top_k', 'typical_p']"), "{err}");

        let mut b = JsonBody::parse(src).unwrap();
        assert!(ExtraParams::Drop.apply(&mut b, &known).unwrap());
        assert_eq!(&b.write(&[])[..], br#"{"messages":[],"model":"m"}"#);

        let mut b = JsonBody::parse(src).unwrap();
        assert!(!ExtraParams::PassThrough.apply(&mut b, &known).unwrap());
        assert_eq!(b.names().count(), 4);
    }
}
