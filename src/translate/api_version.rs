//! The `api-version` query parameter: which versions the endpoint serves, as data.

use crate::error::ApiError;

/// The published Azure AI Model Inference API versions, oldest first.
pub const MODEL_INFERENCE_VERSIONS: &[&str] = &[
    "2024-04-01-preview",
    "2024-05-01-preview",
    "2025-04-01",
    "2025-05-01",
    "2025-05-15-preview",
];

/// The Azure OpenAI data-plane API versions published in the spec, oldest first.
pub const AZURE_OPENAI_VERSIONS: &[&str] = &[
    "2022-12-01",
    "2023-05-15",
    "2024-02-01",
    "2024-06-01",
    "2024-10-21",
    "2023-03-15-preview",
    "2023-06-01-preview",
    "2023-07-01-preview",
    "2023-08-01-preview",
    "2023-09-01-preview",
    "2023-10-01-preview",
    "2023-12-01-preview",
    "2024-02-15-preview",
    "2024-03-01-preview",
    "2024-04-01-preview",
    "2024-05-01-preview",
    "2024-07-01-preview",
    "2024-08-01-preview",
    "2024-09-01-preview",
    "2024-10-01-preview",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-02-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
];

/// The values Azure's v1 routes take for `api-version` (which they do not require).
const V1_VERSIONS: &[&str] = &["v1", "preview", "latest"];

/// The set of accepted api-version values.
#[derive(Debug, Clone)]
pub struct ApiVersions {
    versions: Vec<String>,
    /// The comma-separated list used in error messages, built once.
    listing: String,
}

impl ApiVersions {
    /// The published versions only.
    pub fn published() -> Self {
        let mut v = ApiVersions {
            versions: Vec::new(),
            listing: String::new(),
        };
        for s in MODEL_INFERENCE_VERSIONS {
            v.add(s);
        }
        v
    }

    /// The published Azure OpenAI versions only.
    pub fn azure_openai() -> Self {
        let mut v = ApiVersions {
            versions: Vec::new(),
            listing: String::new(),
        };
        for s in AZURE_OPENAI_VERSIONS {
            v.add(s);
        }
        v
    }

    /// Adds a version (from `--api-versions`); duplicates are ignored.
    pub fn add(&mut self, version: &str) {
        if !self.contains(version) {
            self.versions.push(version.to_owned());
            self.listing = self.versions.join(", ");
        }
    }

    /// Whether `version` is accepted.
    pub fn contains(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// Checks the value of the `api-version` query parameter.
    pub fn check<'a>(&self, given: Option<&'a str>) -> Result<&'a str, ApiError> {
        match given {
            None | Some("") => Err(ApiError::MissingApiVersion),
            Some(v) if self.contains(v) => Ok(v),
            Some(v) => Err(ApiError::UnsupportedApiVersion {
                given: v.chars().take(64).collect(),
                supported: self.listing.clone(),
            }),
        }
    }
}

impl ApiVersions {
    /// Checks `api-version` on the Azure OpenAI deployment routes, answering as Azure OpenAI
    /// does: 404 `Resource not found` when missing, 400 `API version not supported` otherwise.
    pub fn check_openai(&self, given: Option<&str>) -> Result<(), ApiError> {
        match given {
            None | Some("") => Err(ApiError::NotFound),
            Some(v) if self.contains(v) => Ok(()),
            Some(_) => Err(ApiError::ApiVersionNotSupported),
        }
    }

    /// Checks the optional `api-version` of the Azure OpenAI v1 routes.
    pub fn check_v1(&self, given: Option<&str>) -> Result<(), ApiError> {
        match given {
            None | Some("") => Ok(()),
            Some(v) if V1_VERSIONS.contains(&v) || self.contains(v) => Ok(()),
            Some(_) => Err(ApiError::ApiVersionNotSupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_versions_pass_others_fail_with_list() {
        let v = ApiVersions::published();
        for good in MODEL_INFERENCE_VERSIONS {
            assert_eq!(v.check(Some(good)).unwrap(), *good);
        }
        assert!(matches!(v.check(None), Err(ApiError::MissingApiVersion)));
        assert!(matches!(
            v.check(Some("")),
            Err(ApiError::MissingApiVersion)
        ));
        let err = v.check(Some("2023-01-01")).unwrap_err().to_string();
        assert!(
            err.contains("2023-01-01") && err.contains("2025-05-01"),
            "{err}"
        );
    }
}
