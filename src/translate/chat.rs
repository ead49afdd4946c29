//! Chat completions requests: the fields the spec defines and the checks on their shapes.
//!
//! Checking reads only what it needs from the raw JSON; the body itself is forwarded as sent.
//! Every shape the spec allows passes (content as a string or as text / image_url / input_audio
//! parts, assistant messages with `tool_calls` and null content, tool messages, tools,
//! tool_choice as a string or an object, response_format, stop as a string or an array, ...);
//! anything else is a 400 naming the field's path.

use crate::error::ApiError;
use crate::translate::body::JsonBody;
use crate::translate::json::{
    self, array, expect_kind, field, integer, missing, object, one_of, string, Kind, Path,
};
use std::borrow::Cow;

use crate::translate::raw::Raw;

/// Top-level fields of ChatCompletionsOptions in the Model Inference spec, in the order they
/// arrived: the 2024-04-01-preview draft's twelve, then `model` (2024-05-01-preview),
/// `modalities` (2025-04-01), `user_security_context` (2025-05-01 and the 2025-05 previews).
/// The whole list also serves versions added with `--api-versions` and requests without one.
pub const FIELDS: &[&str] = &[
    "messages",
    "frequency_penalty",
    "presence_penalty",
    "temperature",
    "top_p",
    "max_tokens",
    "response_format",
    "stop",
    "stream",
    "tools",
    "tool_choice",
    "seed",
    "model",
    "modalities",
    "user_security_context",
];

/// The spec's chat fields for an api-version.
pub fn fields_for(api_version: Option<&str>) -> &'static [&'static str] {
    match api_version {
        // Each version's fields are a prefix of the latest list, in the order they arrived.
        Some("2024-04-01-preview") => &FIELDS[..12],
        Some("2024-05-01-preview") => &FIELDS[..13],
        Some("2025-04-01") => &FIELDS[..14],
        _ => FIELDS,
    }
}

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];
const PART_TYPES: &[&str] = &["text", "image_url", "input_audio", "audio_url"];

/// What the proxy needs to know about a checked chat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatRequest {
    /// Whether the client asked for a stream.
    pub stream: bool,
}

/// The `messages` array, which every chat request needs and which must not be empty.
fn messages<'a>(body: &JsonBody<'a>) -> Result<Raw<'a>, ApiError> {
    let raw = body
        .get_non_null("messages")
        .ok_or_else(|| missing("messages"))?;
    if array("messages", raw)?.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "'messages' must contain at least one message.",
        ));
    }
    Ok(raw)
}

/// Checks a chat completions body against the spec's shapes.
pub fn check(body: &JsonBody<'_>) -> Result<ChatRequest, ApiError> {
    let messages = messages(body)?;
    json::each_object(&Path::Top("messages"), messages, check_message)?;

    let mut stream = false;
    for name in body.names() {
        let Some(raw) = body.get_non_null(name) else {
            continue;
        };
        match name {
            "stream" => {
                expect_kind(name, raw, &[Kind::Bool])?;
                stream = raw.get() == "true";
            }
            "frequency_penalty" | "presence_penalty" | "temperature" | "top_p" => {
                expect_kind(name, raw, &[Kind::Number])?;
            }
            "max_tokens" => {
                integer(name, raw, 0, i64::from(u32::MAX))?;
            }
            "seed" => {
                integer(name, raw, i64::MIN, i64::MAX)?;
            }
            "model" => {
                string(name, raw)?;
            }
            "stop" => check_stop(raw)?,
            "tools" => check_tools(raw)?,
            "tool_choice" => check_tool_choice(raw)?,
            "response_format" => check_response_format(raw)?,
            "modalities" => {
                let top = Path::Top(name);
                for (i, m) in array(name, raw)?.enumerate() {
                    one_of(&top.index(i), m, &["text", "audio"])?;
                }
            }
            _ => {}
        }
    }
    Ok(ChatRequest { stream })
}

/// The lighter check of the Azure OpenAI routes, whose spec allows more than Model Inference's
/// (other roles and part types, `functions`, `n`, ...): a non-empty `messages` array of
/// objects with a string `role`; the engine judges the rest.
pub fn check_basic(body: &JsonBody<'_>) -> Result<(), ApiError> {
    json::each_object(&Path::Top("messages"), messages(body)?, |path, fields| {
        let role_path = path.field("role");
        string(
            &role_path,
            field(fields, "role").ok_or_else(|| missing(&role_path))?,
        )
        .map(drop)
    })?;
    if let Some(s) = body.get_non_null("stream") {
        expect_kind("stream", s, &[Kind::Bool])?;
    }
    Ok(())
}

/// Legacy completions: a `prompt` is required (string, strings, or tokens).
pub fn check_completions(body: &JsonBody<'_>) -> Result<(), ApiError> {
    let prompt = body
        .get_non_null("prompt")
        .ok_or_else(|| missing("prompt"))?;
    expect_kind("prompt", prompt, &[Kind::String, Kind::Array])?;
    if let Some(s) = body.get_non_null("stream") {
        expect_kind("stream", s, &[Kind::Bool])?;
    }
    Ok(())
}

fn check_message(path: &Path<'_>, fields: &[(Cow<'_, str>, Raw<'_>)]) -> Result<(), ApiError> {
    let role_path = path.field("role");
    let role = field(fields, "role").ok_or_else(|| missing(&role_path))?;
    let role = one_of(&role_path, role, ROLES)?;
    let content = field(fields, "content");
    let content_path = path.field("content");
    match role.as_ref() {
        "user" => {
            let content = content.ok_or_else(|| missing(&content_path))?;
            check_content(&content_path, content, PART_TYPES)?;
        }
        "system" | "developer" => {
            let content = content.ok_or_else(|| missing(&content_path))?;
            check_content(&content_path, content, &["text"])?;
        }
        "assistant" => {
            if let Some(content) = content {
                check_content(&content_path, content, &["text"])?;
            }
            if let Some(calls) = field(fields, "tool_calls") {
                check_tool_calls(&path.field("tool_calls"), calls)?;
            } else if content.is_none() {
                return Err(ApiError::invalid_param(
                    content_path.to_string(),
                    format!("'{content_path}' is required when an assistant message has no 'tool_calls'."),
                ));
            }
        }
        _ => {
            // "tool": the answer to one tool call.
            let content = content.ok_or_else(|| missing(&content_path))?;
            check_content(&content_path, content, &["text"])?;
            let id_path = path.field("tool_call_id");
            string(
                &id_path,
                field(fields, "tool_call_id").ok_or_else(|| missing(&id_path))?,
            )?;
        }
    }
    Ok(())
}

/// Content is a string or an array of parts of the allowed types.
fn check_content(path: &Path<'_>, raw: Raw<'_>, types: &[&str]) -> Result<(), ApiError> {
    if Kind::of(raw) == Kind::String {
        return Ok(());
    }
    if Kind::of(raw) != Kind::Array {
        return Err(json::wrong_kind(
            path,
            "a string or an array of content parts",
            raw,
        ));
    }
    json::each_object(path, raw, |part_path, fields| {
        let type_path = part_path.field("type");
        let kind = field(fields, "type").ok_or_else(|| missing(&type_path))?;
        let kind = one_of(&type_path, kind, types)?;
        match kind.as_ref() {
            "text" => {
                let p = part_path.field("text");
                string(&p, field(fields, "text").ok_or_else(|| missing(&p))?)?;
            }
            "image_url" => {
                let p = part_path.field("image_url");
                let image = object(&p, field(fields, "image_url").ok_or_else(|| missing(&p))?)?;
                let url_path = p.field("url");
                string(
                    &url_path,
                    field(&image, "url").ok_or_else(|| missing(&url_path))?,
                )?;
                if let Some(detail) = field(&image, "detail") {
                    one_of(&p.field("detail"), detail, &["auto", "low", "high"])?;
                }
            }
            "audio_url" => {
                let p = part_path.field("audio_url");
                let audio = object(&p, field(fields, "audio_url").ok_or_else(|| missing(&p))?)?;
                let url_path = p.field("url");
                string(
                    &url_path,
                    field(&audio, "url").ok_or_else(|| missing(&url_path))?,
                )?;
            }
            _ => {
                // "input_audio"
                let p = part_path.field("input_audio");
                let audio = object(&p, field(fields, "input_audio").ok_or_else(|| missing(&p))?)?;
                let data_path = p.field("data");
                string(
                    &data_path,
                    field(&audio, "data").ok_or_else(|| missing(&data_path))?,
                )?;
                let format_path = p.field("format");
                one_of(
                    &format_path,
                    field(&audio, "format").ok_or_else(|| missing(&format_path))?,
                    &["wav", "mp3"],
                )?;
            }
        }
        Ok(())
    })
}

fn check_tool_calls(path: &Path<'_>, raw: Raw<'_>) -> Result<(), ApiError> {
    for (i, call) in array(path, raw)?.enumerate() {
        let call_path = path.index(i);
        let fields = object(&call_path, call)?;
        let id_path = call_path.field("id");
        string(
            &id_path,
            field(&fields, "id").ok_or_else(|| missing(&id_path))?,
        )?;
        if let Some(t) = field(&fields, "type") {
            one_of(&call_path.field("type"), t, &["function"])?;
        }
        let f_path = call_path.field("function");
        let function = object(
            &f_path,
            field(&fields, "function").ok_or_else(|| missing(&f_path))?,
        )?;
        let name_path = f_path.field("name");
        string(
            &name_path,
            field(&function, "name").ok_or_else(|| missing(&name_path))?,
        )?;
        let args_path = f_path.field("arguments");
        string(
            &args_path,
            field(&function, "arguments").ok_or_else(|| missing(&args_path))?,
        )?;
    }
    Ok(())
}

fn check_stop(raw: Raw<'_>) -> Result<(), ApiError> {
    if Kind::of(raw) == Kind::String {
        return Ok(());
    }
    let items = array("stop", raw)
        .map_err(|_| json::wrong_kind("stop", "a string or an array of strings", raw))?;
    let top = Path::Top("stop");
    for (i, s) in items.enumerate() {
        string(&top.index(i), s)?;
    }
    Ok(())
}

fn check_tools(raw: Raw<'_>) -> Result<(), ApiError> {
    let top = Path::Top("tools");
    for (i, tool) in array("tools", raw)?.enumerate() {
        let path = top.index(i);
        let fields = object(&path, tool)?;
        let type_path = path.field("type");
        one_of(
            &type_path,
            field(&fields, "type").ok_or_else(|| missing(&type_path))?,
            &["function"],
        )?;
        let f_path = path.field("function");
        let function = object(
            &f_path,
            field(&fields, "function").ok_or_else(|| missing(&f_path))?,
        )?;
        let name_path = f_path.field("name");
        string(
            &name_path,
            field(&function, "name").ok_or_else(|| missing(&name_path))?,
        )?;
        if let Some(d) = field(&function, "description") {
            string(&f_path.field("description"), d)?;
        }
        if let Some(p) = field(&function, "parameters") {
            expect_kind(&f_path.field("parameters"), p, &[Kind::Object])?;
        }
    }
    Ok(())
}

fn check_tool_choice(raw: Raw<'_>) -> Result<(), ApiError> {
    if Kind::of(raw) == Kind::String {
        one_of("tool_choice", raw, &["auto", "none", "required"])?;
        return Ok(());
    }
    let fields = object("tool_choice", raw)
        .map_err(|_| json::wrong_kind("tool_choice", "a string or an object", raw))?;
    if let Some(t) = field(&fields, "type") {
        one_of("tool_choice.type", t, &["function"])?;
    }
    let function = object(
        "tool_choice.function",
        field(&fields, "function").ok_or_else(|| missing("tool_choice.function"))?,
    )?;
    string(
        "tool_choice.function.name",
        field(&function, "name").ok_or_else(|| missing("tool_choice.function.name"))?,
    )?;
    Ok(())
}

fn check_response_format(raw: Raw<'_>) -> Result<(), ApiError> {
    let fields = object("response_format", raw)?;
    let kind = field(&fields, "type").ok_or_else(|| missing("response_format.type"))?;
    let kind = one_of(
        "response_format.type",
        kind,
        &["text", "json_object", "json_schema"],
    )?;
    if kind == "json_schema" {
        let schema = object(
            "response_format.json_schema",
            field(&fields, "json_schema").ok_or_else(|| missing("response_format.json_schema"))?,
        )?;
        string(
            "response_format.json_schema.name",
            field(&schema, "name").ok_or_else(|| missing("response_format.json_schema.name"))?,
        )?;
        let s = field(&schema, "schema")
            .ok_or_else(|| missing("response_format.json_schema.schema"))?;
        expect_kind("response_format.json_schema.schema", s, &[Kind::Object])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> Result<ChatRequest, String> {
        let body = JsonBody::parse(src.as_bytes()).map_err(|e| e.to_string())?;
        check(&body).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_every_shape_the_spec_allows() {
        let ok = [
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}},{"type":"input_audio","input_audio":{"data":"UklGR","format":"wav"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"get","description":"d","parameters":{"type":"object"}}}],"tool_choice":"auto"}"#,
            r#"{"messages":[{"role":"developer","content":"x"}],"tool_choice":{"type":"function","function":{"name":"get"}},"stop":["a","b"],"seed":42,"model":"m","temperature":0.2,"top_p":1,"max_tokens":10,"frequency_penalty":0,"presence_penalty":-1.5,"modalities":["text"]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"},"strict":true}},"stop":"end","stream":true}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"},"max_tokens":null,"tools":null}"#,
        ];
        for src in ok {
            assert!(run(src).is_ok(), "{src}: {:?}", run(src));
        }
        assert!(run(ok[4]).unwrap().stream);
        assert!(!run(ok[0]).unwrap().stream);
    }

    #[test]
    fn fields_follow_the_api_version() {
        assert!(!fields_for(Some("2024-04-01-preview")).contains(&"model"));
        assert!(fields_for(Some("2024-05-01-preview")).contains(&"model"));
        assert!(!fields_for(Some("2024-05-01-preview")).contains(&"modalities"));
        assert!(fields_for(Some("2025-04-01")).contains(&"modalities"));
        assert!(!fields_for(Some("2025-04-01")).contains(&"user_security_context"));
        for v in ["2025-05-01", "2025-05-15-preview"] {
            assert!(fields_for(Some(v)).contains(&"user_security_context"));
        }
        assert_eq!(fields_for(None), FIELDS);
    }

    #[test]
    fn rejects_bad_shapes_naming_the_path() {
        let bad = [
            (r#"{}"#, "'messages'"),
            (r#"{"messages":[]}"#, "at least one"),
            (r#"{"messages":"hi"}"#, "'messages': expected an array"),
            (r#"{"messages":[{"content":"x"}]}"#, "messages[0].role"),
            (
                r#"{"messages":[{"role":"bot","content":"x"}]}"#,
                "messages[0].role",
            ),
            (r#"{"messages":[{"role":"user"}]}"#, "messages[0].content"),
            (
                r#"{"messages":[{"role":"user","content":5}]}"#,
                "messages[0].content",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"video"}]}]}"#,
                "messages[0].content[0].type",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#,
                "image_url.url",
            ),
            (
                r#"{"messages":[{"role":"tool","content":"x"}]}"#,
                "messages[0].tool_call_id",
            ),
            (
                r#"{"messages":[{"role":"assistant"}]}"#,
                "messages[0].content",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                "'stream'",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":1.5}"#,
                "'max_tokens'",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                "'temperature'",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stop":[1]}"#,
                "stop[0]",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"maybe"}"#,
                "tool_choice",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}"#,
                "response_format.type",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#,
                "tools[0].function",
            ),
        ];
        for (src, needle) in bad {
            let err = run(src).unwrap_err();
            assert!(err.contains(needle), "{src}: {err}");
        }
    }
}
