//! Filling engines' gaps in chat requests, so that what Azure clients send works on every
//! engine instead of meeting an engine error the proxy could have avoided. Pure: the engine's
//! capabilities and the body in, top-level fields to replace out (nothing when nothing is needed,
//! so most requests keep their bytes).

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::translate::body::JsonBody;
use crate::translate::raw::Raw;
use crate::upstream::engines::{Capabilities, Engine, JsonSchema};

/// Top-level fields to set (name, serialised JSON value) for `engine`.
pub fn chat(body: &JsonBody<'_>, engine: Engine) -> Result<Vec<(&'static str, String)>, ApiError> {
    let caps = engine.capabilities();
    let mut set = Vec::new();

    // Engines that ignore max_completion_tokens would generate without bound.
    if !caps.max_completion_tokens && body.get_non_null("max_tokens").is_none() {
        if let Some(v) = body.get_non_null("max_completion_tokens") {
            set.push(("max_tokens", v.get().to_owned()));
        }
    }

    if let Some(raw) = body.get_non_null("messages") {
        let has_null = body.has_null_in("messages");
        if let Some(messages) = adapt_messages(raw, has_null, caps, engine)? {
            set.push(("messages", messages));
        }
    }

    if let Some(raw) = body.get_non_null("response_format") {
        if let Some(format) = adapt_response_format(raw.get(), caps, engine)? {
            set.push(("response_format", format));
        }
    }
    Ok(set)
}

/// Rewrites messages only when this engine needs it: text parts joined into one string where
/// arrays are refused, `developer` as `system` where unknown, null content as "" where refused,
/// null-valued optional fields (LangChain's `"name": null`) dropped.
fn adapt_messages(
    raw: Raw<'_>,
    has_null: bool,
    caps: Capabilities,
    engine: Engine,
) -> Result<Option<String>, ApiError> {
    // An engine that takes every shape needs only the null fields dropped: none when the check
    // saw no null in the messages, else found by walking them, without building them.
    let no_null_fields = || {
        !has_null
            || raw
                .elements()
                .all(|m| m.members().all(|(k, v)| !v.is_null() || k == "content"))
    };
    if caps.content_parts && caps.null_content && caps.developer_role && no_null_fields() {
        return Ok(None);
    }
    let mut messages: Vec<Value> = match serde_json::from_str(raw.get()) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let mut changed = false;
    for (i, message) in messages.iter_mut().enumerate() {
        let Some(m) = message.as_object_mut() else {
            continue;
        };
        changed |= drop_null_fields(m);
        if !caps.developer_role && m.get("role").and_then(Value::as_str) == Some("developer") {
            m.insert("role".into(), Value::from("system"));
            changed = true;
        }
        match m.get("content") {
            Some(Value::Null) | None if !caps.null_content && m.contains_key("tool_calls") => {
                m.insert("content".into(), Value::from(""));
                changed = true;
            }
            Some(Value::Array(parts)) if !caps.content_parts => {
                let mut texts = Vec::with_capacity(parts.len());
                for part in parts {
                    match part.get("type").and_then(Value::as_str) {
                        Some("text") => texts.push(part.get("text").and_then(Value::as_str).unwrap_or_default()),
                        other => {
                            return Err(ApiError::invalid_param(
                                format!("messages[{i}].content"),
                                format!(
                                    "The model's engine ({engine}) does not accept '{}' content; send text only.",
                                    other.unwrap_or("unknown")
                                ),
                            ))
                        }
                    }
                }
                let joined = texts.join("\n");
                m.insert("content".into(), Value::from(joined));
                changed = true;
            }
            _ => {}
        }
    }
    if !changed {
        return Ok(None);
    }
    Ok(serde_json::to_string(&messages).ok())
}

/// Removes null-valued fields other than `content` (whose null means "no text" beside tool calls).
fn drop_null_fields(m: &mut Map<String, Value>) -> bool {
    let before = m.len();
    m.retain(|k, v| !v.is_null() || k == "content");
    before != m.len()
}

/// `json_schema` in the engine's own structured-output form.
fn adapt_response_format(
    raw: &str,
    caps: Capabilities,
    engine: Engine,
) -> Result<Option<String>, ApiError> {
    if caps.json_schema == JsonSchema::Native || !raw.contains("json_schema") {
        return Ok(None);
    }
    let Ok(format) = serde_json::from_str::<Value>(raw) else {
        return Ok(None);
    };
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Ok(None);
    }
    let schema = format
        .pointer("/json_schema/schema")
        .cloned()
        .unwrap_or(Value::Null);
    let out = match caps.json_schema {
        JsonSchema::Native => return Ok(None),
        JsonSchema::JsonObjectWithSchema => serde_json::json!({"type": "json_object", "schema": schema}),
        JsonSchema::TgiGrammar => serde_json::json!({"type": "json", "value": schema}),
        JsonSchema::Unsupported => {
            return Err(ApiError::invalid_param(
                "response_format",
                format!("The model's engine ({engine}) has no structured output: 'json_schema' cannot be honoured."),
            ))
        }
    };
    Ok(Some(out.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(src: &str, engine: Engine) -> Vec<(&'static str, Value)> {
        let body = JsonBody::parse(src.as_bytes()).unwrap();
        chat(&body, engine)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, serde_json::from_str(&v).unwrap()))
            .collect()
    }

    #[test]
    fn vllm_needs_nothing() {
        let src = r#"{"messages":[{"role":"developer","content":[{"type":"text","text":"a"}]}],"max_completion_tokens":5,"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{}}}}"#;
        assert!(edits(src, Engine::Vllm).is_empty());
    }

    #[test]
    fn null_fields_are_dropped_for_every_engine_and_null_in_text_is_not_a_field() {
        let src = r#"{"messages":[{"role":"user","content":"say null","name":null},{"role":"assistant","content":null,"tool_calls":[]}]}"#;
        assert_eq!(
            edits(src, Engine::Vllm),
            [(
                "messages",
                serde_json::json!([{"role":"user","content":"say null"},{"role":"assistant","content":null,"tool_calls":[]}])
            )]
        );
        let src = r#"{"messages":[{"role":"user","content":"null \"null\": null","name":"null"}]}"#;
        assert!(edits(src, Engine::Vllm).is_empty());
    }

    #[test]
    fn llama_cpp_python_gets_what_it_accepts() {
        let src = r#"{"messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"name":null},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],"max_completion_tokens":5,"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}}"#;
        let e = edits(src, Engine::LlamaCppPython);
        assert_eq!(e[0], ("max_tokens", serde_json::json!(5)));
        assert_eq!(
            e[1].1,
            serde_json::json!([
                {"role":"system","content":"be brief"},
                {"role":"user","content":"a\nb"},
                {"role":"assistant","content":"","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}
            ])
        );
        assert_eq!(
            e[2],
            (
                "response_format",
                serde_json::json!({"type":"json_object","schema":{"type":"object"}})
            )
        );
    }

    #[test]
    fn images_to_a_text_only_engine_are_a_clear_400() {
        let src = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:,"}}]}]}"#;
        let body = JsonBody::parse(src.as_bytes()).unwrap();
        let err = chat(&body, Engine::LlamaCppPython).unwrap_err().to_string();
        assert!(
            err.contains("image_url") && err.contains("llama-cpp-python"),
            "{err}"
        );
    }

    #[test]
    fn explicit_max_tokens_wins() {
        let src = r#"{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,"max_tokens":7}"#;
        assert!(edits(src, Engine::LlamaCppPython).is_empty());
    }
}
