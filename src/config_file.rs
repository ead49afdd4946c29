//! The optional TOML file (`--config`) that declares several engines ("upstreams"), their
//! replicas, and the deployments they serve. Read raw (unknown keys refused), then checked;
//! every error names the file and the line.
//!
//! ```toml
//! [[upstreams]]
//! name = "chat"
//! replicas = ["http://10.0.0.2:8000", "http://10.0.0.3:8000"]   # or: url = "..."
//! engine = "vllm"                   # optional; detected when absent
//! api_key_env = "CHAT_ENGINE_KEY"   # optional; or api_key = "..."
//!
//! [[deployments]]
//! name = "gpt-4o"                   # what clients ask for
//! upstream = "chat"
//! model = "Qwen/Qwen2.5-7B-Instruct" # the engine's model name; default: the deployment name
//! type = "chat-completion"          # optional: chat-completion | embeddings
//! ```

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{DeploymentConfig, UpstreamConfig};
use crate::translate::info::ModelType;
use crate::upstream::engines::Engine;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    upstreams: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    deployments: Vec<Spanned<RawDeployment>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: String,
    url: Option<String>,
    #[serde(default)]
    replicas: Vec<String>,
    engine: Option<String>,
    api_key: Option<String>,
    api_key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    name: String,
    upstream: String,
    model: Option<String>,
    #[serde(rename = "type")]
    model_type: Option<String>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<(Vec<UpstreamConfig>, Vec<DeploymentConfig>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config: cannot read '{}': {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks a config file's text; `origin` names it in errors.
pub fn parse(
    text: &str,
    origin: &str,
) -> Result<(Vec<UpstreamConfig>, Vec<DeploymentConfig>), String> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(" line {}", line_of(s.start)))
            .unwrap_or_default();
        format!("--config {origin}:{line}: {}", e.message())
    })?;
    let at =
        |span: std::ops::Range<usize>| format!("--config {origin}: line {}", line_of(span.start));

    if raw.upstreams.is_empty() {
        return Err(format!("--config {origin}: no [[upstreams]] declared"));
    }
    let mut upstreams = Vec::with_capacity(raw.upstreams.len());
    for spanned in &raw.upstreams {
        let where_ = at(spanned.span());
        let u = spanned.get_ref();
        if u.name.trim().is_empty() {
            return Err(format!("{where_}: upstream 'name' must not be empty"));
        }
        if upstreams.iter().any(|x: &UpstreamConfig| x.name == u.name) {
            return Err(format!("{where_}: upstream '{}' is declared twice", u.name));
        }
        let mut urls = Vec::new();
        if let Some(url) = &u.url {
            urls.push(url.clone());
        }
        urls.extend(u.replicas.iter().cloned());
        if urls.is_empty() {
            return Err(format!(
                "{where_}: upstream '{}' needs 'url' or 'replicas'",
                u.name
            ));
        }
        let urls = urls
            .iter()
            .map(|url| {
                crate::config::base_url(url)
                    .map_err(|e| format!("{where_}: upstream '{}': {e}", u.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let engine = match &u.engine {
            Some(e) => Some(Engine::from_name(e).ok_or_else(|| {
                format!(
                    "{where_}: upstream '{}': unknown engine '{e}' (vllm, tgi, sglang, tei, llamacpp, llama-cpp-python, generic)",
                    u.name
                )
            })?),
            None => None,
        };
        let api_key = match (&u.api_key, &u.api_key_env) {
            (Some(_), Some(_)) => {
                return Err(format!("{where_}: upstream '{}': give 'api_key' or 'api_key_env', not both", u.name))
            }
            (Some(k), None) => Some(k.clone()),
            (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                format!("{where_}: upstream '{}': environment variable '{var}' (api_key_env) is not set", u.name)
            })?),
            (None, None) => None,
        };
        upstreams.push(UpstreamConfig {
            name: u.name.clone(),
            urls,
            api_key,
            engine,
        });
    }

    let mut deployments: Vec<DeploymentConfig> = Vec::with_capacity(raw.deployments.len());
    for spanned in &raw.deployments {
        let where_ = at(spanned.span());
        let d = spanned.get_ref();
        if d.name.trim().is_empty() {
            return Err(format!("{where_}: deployment 'name' must not be empty"));
        }
        if deployments.iter().any(|x| x.name == d.name) {
            return Err(format!(
                "{where_}: deployment '{}' is declared twice",
                d.name
            ));
        }
        let upstream = upstreams
            .iter()
            .position(|u| u.name == d.upstream)
            .ok_or_else(|| {
                format!(
                    "{where_}: deployment '{}': no upstream named '{}'",
                    d.name, d.upstream
                )
            })?;
        let model_type = match d.model_type.as_deref() {
            None => None,
            Some("chat-completion") | Some("chat") => Some(ModelType::ChatCompletion),
            Some("embeddings") => Some(ModelType::Embeddings),
            Some(other) => {
                return Err(format!(
                "{where_}: deployment '{}': unknown type '{other}' (chat-completion or embeddings)",
                d.name
            ))
            }
        };
        deployments.push(DeploymentConfig {
            name: d.name.clone(),
            upstream,
            model: d.model.clone().unwrap_or_else(|| d.name.clone()),
            model_type,
        });
    }
    Ok((upstreams, deployments))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[upstreams]]
name = "chat"
replicas = ["http://127.0.0.1:8001", "http://127.0.0.1:8002/v1"]
engine = "vllm"

[[upstreams]]
name = "embed"
url = "http://127.0.0.1:8003"
api_key = "k"

[[deployments]]
name = "gpt-4o"
upstream = "chat"
model = "Qwen/Qwen2.5-7B-Instruct"
type = "chat-completion"

[[deployments]]
name = "text-embedding-3-small"
upstream = "embed"
"#;

    #[test]
    fn reads_upstreams_and_deployments() {
        let (u, d) = parse(GOOD, "t.toml").unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(
            u[0].urls,
            ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
        );
        assert_eq!(u[0].engine, Some(Engine::Vllm));
        assert_eq!(u[1].api_key.as_deref(), Some("k"));
        assert_eq!(d[0].model, "Qwen/Qwen2.5-7B-Instruct");
        assert_eq!(d[1].upstream, 1);
        assert_eq!(d[1].model, "text-embedding-3-small");
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../examples/two-engines.toml");
        let (u, d) = parse(text, "examples/two-engines.toml").unwrap();
        assert_eq!((u.len(), d.len()), (2, 2));
        assert_eq!(u[0].urls.len(), 2);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("[[upstreams]]\nname = \"a\"\nurl = \"http://x\"\ncolour = 1\n", "line 4"),
            ("[[upstreams]]\nname = \"a\"\n", "line 1"),
            ("[[upstreams]]\nname = \"a\"\nurl = \"ftp://x\"\n", "line 1"),
            ("[[upstreams]]\nname = \"a\"\nurl = \"http://x\"\n\n[[deployments]]\nname = \"d\"\nupstream = \"b\"\n", "line 5"),
            ("[[upstreams]]\nname = \"a\"\nurl = \"http://x\"\nengine = \"ollama\"\n", "unknown engine"),
            ("[[upstreams]]\nname = \"a\"\nurl = \"http://x\"\napi_key_env = \"AOP_TEST_SURELY_UNSET\"\n", "AOP_TEST_SURELY_UNSET"),
            ("", "no [[upstreams]]"),
            ("[[upstreams]\n", "line 1"),
        ];
        for (text, needle) in cases {
            let err = parse(text, "t.toml").unwrap_err();
            assert!(
                err.contains(needle) && err.contains("--config"),
                "{text:?}: {err}"
            );
        }
    }
}
