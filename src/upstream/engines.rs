//! What each engine can do, as data, and how the proxy recognises the engine it talks to.

use std::fmt;

/// The engines the proxy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Vllm,
    Tgi,
    Sglang,
    Tei,
    LlamaCpp,
    LlamaCppPython,
    /// Any other OpenAI-compatible server: only the common routes are assumed.
    Generic,
}

/// How an engine takes a JSON schema for structured output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonSchema {
    /// OpenAI's `response_format: {type: json_schema, json_schema: {...}}`.
    Native,
    /// llama-cpp-python's `{type: json_object, schema: ...}`.
    JsonObjectWithSchema,
    /// TGI's grammar `{type: json, value: ...}`.
    TgiGrammar,
    /// No structured output.
    Unsupported,
}

/// One engine's capabilities that change what the proxy sends or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether `/v1/models` exists (TEI has only `/info`).
    pub models_route: bool,
    /// Whether `/v1/embeddings` accepts `dimensions`.
    pub dimensions: bool,
    /// Whether `/v1/embeddings` accepts `input_type`.
    pub input_type: bool,
    /// Whether `/v1/embeddings` takes chat-style `messages` with images (image embeddings).
    pub image_embeddings: bool,
    /// Whether `/v1/responses` exists.
    pub responses: bool,
    /// Whether `/v1/audio/transcriptions` exists.
    pub transcriptions: bool,
    /// Whether message content may be an array of parts.
    pub content_parts: bool,
    /// Whether an assistant message may have `content: null` beside tool calls.
    pub null_content: bool,
    /// Whether the `developer` role is known.
    pub developer_role: bool,
    /// Whether `max_completion_tokens` bounds the output.
    pub max_completion_tokens: bool,
    /// How structured output is asked for.
    pub json_schema: JsonSchema,
    /// Whether a stream asked for with `stream_options.include_usage` ends with a usage chunk.
    pub stream_usage: bool,
    /// The engine's route that counts tokens: (path, JSON field of the text).
    pub tokenize: Option<(&'static str, &'static str)>,
}

impl Engine {
    /// The engine's capabilities.
    pub fn capabilities(self) -> Capabilities {
        let base = Capabilities {
            models_route: true,
            dimensions: false,
            input_type: false,
            image_embeddings: false,
            responses: false,
            transcriptions: false,
            content_parts: true,
            null_content: true,
            developer_role: true,
            max_completion_tokens: false,
            json_schema: JsonSchema::Native,
            stream_usage: true,
            tokenize: None,
        };
        match self {
            Engine::Vllm => Capabilities {
                dimensions: true,
                image_embeddings: true,
                responses: true,
                transcriptions: true,
                max_completion_tokens: true,
                ..base
            },
            Engine::Sglang => Capabilities {
                max_completion_tokens: true,
                ..base
            },
            Engine::Tgi => Capabilities {
                json_schema: JsonSchema::TgiGrammar,
                ..base
            },
            Engine::LlamaCppPython => Capabilities {
                content_parts: false,
                null_content: false,
                developer_role: false,
                json_schema: JsonSchema::JsonObjectWithSchema,
                stream_usage: false,
                tokenize: Some(("/extras/tokenize/count", "input")),
                ..base
            },
            Engine::Tei => Capabilities {
                models_route: false,
                dimensions: true,
                ..base
            },
            Engine::LlamaCpp | Engine::Generic => base,
        }
    }

    /// Reads an engine name as `--engine` and the config file spell it.
    pub fn from_name(name: &str) -> Option<Engine> {
        match name.to_ascii_lowercase().as_str() {
            "vllm" => Some(Engine::Vllm),
            "tgi" => Some(Engine::Tgi),
            "sglang" => Some(Engine::Sglang),
            "tei" => Some(Engine::Tei),
            "llamacpp" | "llama.cpp" | "llama-cpp" => Some(Engine::LlamaCpp),
            "llama-cpp-python" => Some(Engine::LlamaCppPython),
            "generic" => Some(Engine::Generic),
            _ => None,
        }
    }

    /// A display name, also used as the provider of last resort in `/info`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Vllm => "vLLM",
            Engine::Tgi => "TGI",
            Engine::Sglang => "SGLang",
            Engine::Tei => "TEI",
            Engine::LlamaCpp => "llama.cpp",
            Engine::LlamaCppPython => "llama-cpp-python",
            Engine::Generic => "OpenAI-compatible engine",
        }
    }

    /// Recognises the engine from its `/v1/models` `owned_by` and its `server` header.
    pub fn detect(owned_by: Option<&str>, server_header: Option<&str>) -> Engine {
        match owned_by.map(str::to_ascii_lowercase).as_deref() {
            Some("vllm") => return Engine::Vllm,
            Some("sglang") => return Engine::Sglang,
            Some("llamacpp") => return Engine::LlamaCpp,
            _ => {}
        }
        let server = server_header
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if server.contains("llama.cpp") {
            Engine::LlamaCpp
        } else if owned_by == Some("me") && server.contains("uvicorn") {
            // llama-cpp-python's server lists its models as owned by "me".
            Engine::LlamaCppPython
        } else {
            Engine::Generic
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        assert_eq!(Engine::detect(Some("vllm"), None), Engine::Vllm);
        assert_eq!(
            Engine::detect(Some("sglang"), Some("uvicorn")),
            Engine::Sglang
        );
        assert_eq!(Engine::detect(Some("llamacpp"), None), Engine::LlamaCpp);
        assert_eq!(
            Engine::detect(Some("me"), Some("uvicorn")),
            Engine::LlamaCppPython
        );
        assert_eq!(
            Engine::detect(Some("someone"), Some("nginx")),
            Engine::Generic
        );
        assert!(Engine::Vllm.capabilities().image_embeddings);
        assert!(!Engine::Tei.capabilities().models_route);
    }
}
