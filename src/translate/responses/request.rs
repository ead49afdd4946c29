//! A Responses request read and rewritten as one chat-completions request.
//!
//! Only what chat completions can express is accepted: function tools, text and image input,
//! function calls and their outputs, structured output. Anything that needs OpenAI's hosted
//! services (built-in tools, files, stored prompts, conversations, background runs) is a 400
//! naming the field, so the client learns why instead of getting a silently different answer.
//! Unknown top-level fields are ignored, as they carry no meaning for the engine.

use serde_json::{json, Map, Value};

use super::ChatPlan;
use crate::error::ApiError;
use crate::translate::body::JsonBody;
use crate::translate::json::{
    array, expect_kind, field, integer, missing, object, one_of, string, wrong_kind, Kind,
};
use crate::translate::raw::Raw;

type Fields<'a> = Vec<(std::borrow::Cow<'a, str>, Raw<'a>)>;

/// The `previous_response_id` of a Responses request body, if it has one, so the caller can look
/// the conversation up before calling [`to_chat`].
pub fn previous_response_id(body: &[u8]) -> Result<Option<String>, ApiError> {
    let body = JsonBody::parse(body)?;
    body.get_non_null("previous_response_id")
        .map(|raw| string("previous_response_id", raw).map(|s| s.into_owned()))
        .transpose()
}

/// Plans a Responses request (`body`) as a chat-completions request for `model`. `history` is
/// the stored conversation of `previous_response_id`; a request naming one without its history
/// is answered with a 400 on `previous_response_id` (the store evicted it, or it never existed).
pub fn to_chat(body: &[u8], model: &str, history: Option<&[Value]>) -> Result<ChatPlan, ApiError> {
    let body = JsonBody::parse(body)?;
    refuse_hosted_features(&body)?;

    let mut settings = Map::new();
    let mut chat = Map::new();
    settings.insert("model".into(), json!(model));
    chat.insert("model".into(), json!(model));

    let previous = body
        .get_non_null("previous_response_id")
        .map(|raw| string("previous_response_id", raw))
        .transpose()?;
    let mut conversation: Vec<Value> = Vec::new();
    if let Some(previous) = &previous {
        let Some(history) = history else {
            return Err(ApiError::invalid_param(
                "previous_response_id",
                format!("Previous response with id '{previous}' not found."),
            ));
        };
        conversation.extend_from_slice(history);
        settings.insert("previous_response_id".into(), json!(previous));
    }

    let instructions = body
        .get_non_null("instructions")
        .map(|raw| string("instructions", raw))
        .transpose()?;
    if let Some(instructions) = &instructions {
        settings.insert("instructions".into(), json!(instructions));
    }

    match body.get_non_null("input") {
        Some(raw) if Kind::of(raw) == Kind::String => {
            let text = string("input", raw)?;
            conversation.push(json!({"role": "user", "content": text}));
        }
        Some(raw) => {
            let start = conversation.len();
            for (i, item) in array("input", raw)?.enumerate() {
                input_item(&format!("input[{i}]"), item, &mut conversation, start)?;
            }
        }
        None if previous.is_none() => return Err(missing("input")),
        None => {}
    }
    if conversation.is_empty() {
        return Err(ApiError::invalid_param(
            "input",
            "The request has no input: 'input' must hold at least one message.",
        ));
    }

    // Instructions lead what the engine sees but are not part of the stored conversation.
    let mut sent = Vec::with_capacity(conversation.len() + 1);
    if let Some(instructions) = &instructions {
        sent.push(json!({"role": "system", "content": instructions}));
    }
    sent.extend(conversation.iter().cloned());
    chat.insert("messages".into(), Value::Array(sent));

    if let Some(raw) = body.get_non_null("tools") {
        let mut tools = Vec::new();
        for (i, tool) in array("tools", raw)?.enumerate() {
            tools.push(function_tool(&format!("tools[{i}]"), tool)?);
        }
        if !tools.is_empty() {
            chat.insert("tools".into(), Value::Array(tools));
        }
        settings.insert("tools".into(), to_value(raw)?);
    }
    if let Some(raw) = body.get_non_null("tool_choice") {
        chat.insert("tool_choice".into(), tool_choice(raw)?);
        settings.insert("tool_choice".into(), to_value(raw)?);
    }
    if let Some(raw) = body.get_non_null("parallel_tool_calls") {
        expect_kind("parallel_tool_calls", raw, &[Kind::Bool])?;
        chat.insert("parallel_tool_calls".into(), to_value(raw)?);
        settings.insert("parallel_tool_calls".into(), to_value(raw)?);
    }
    if let Some(raw) = body.get_non_null("text") {
        if let Some(format) = response_format(raw)? {
            chat.insert("response_format".into(), format);
        }
        settings.insert("text".into(), to_value(raw)?);
    }
    if let Some(raw) = body.get_non_null("max_output_tokens") {
        let n = integer("max_output_tokens", raw, 1, i64::MAX)?;
        chat.insert("max_tokens".into(), json!(n));
        settings.insert("max_output_tokens".into(), json!(n));
    }
    for name in ["temperature", "top_p"] {
        if let Some(raw) = body.get_non_null(name) {
            expect_kind(name, raw, &[Kind::Number])?;
            chat.insert(name.into(), to_value(raw)?);
            settings.insert(name.into(), to_value(raw)?);
        }
    }
    if let Some(raw) = body.get_non_null("user") {
        let user = string("user", raw)?;
        chat.insert("user".into(), json!(user));
        settings.insert("user".into(), json!(user));
    }
    // Echoed only: the engine has no use for them.
    for (name, kind) in [("metadata", Kind::Object), ("reasoning", Kind::Object)] {
        if let Some(raw) = body.get_non_null(name) {
            expect_kind(name, raw, &[kind])?;
            settings.insert(name.into(), to_value(raw)?);
        }
    }
    let store = flag(&body, "store")?.unwrap_or(true);
    settings.insert("store".into(), json!(store));
    let stream = flag(&body, "stream")?.unwrap_or(false);
    if stream {
        chat.insert("stream".into(), json!(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }

    let chat_body = serde_json::to_vec(&Value::Object(chat))
        .map_err(|e| ApiError::invalid(format!("The request cannot be translated: {e}")))?;
    Ok(ChatPlan {
        chat_body: chat_body.into(),
        stream,
        settings: Value::Object(settings),
        messages: conversation,
    })
}

/// Fields whose meaning lives in OpenAI's service, not in the model.
fn refuse_hosted_features(body: &JsonBody) -> Result<(), ApiError> {
    if flag(body, "background")? == Some(true) {
        return Err(not_supported(
            "'background' responses are not supported by this endpoint; send the request without it.",
        ));
    }
    for name in ["conversation", "prompt"] {
        if body.get_non_null(name).is_some() {
            return Err(not_supported(&format!(
                "'{name}' is not supported by this endpoint; use 'input' and 'previous_response_id' instead."
            )));
        }
    }
    Ok(())
}

fn not_supported(message: &str) -> ApiError {
    ApiError::OperationNotSupported {
        message: message.into(),
    }
}

fn flag(body: &JsonBody, name: &str) -> Result<Option<bool>, ApiError> {
    body.get_non_null(name)
        .map(|raw| {
            expect_kind(name, raw, &[Kind::Bool])?;
            Ok(raw.get() == "true")
        })
        .transpose()
}

/// A raw value already known to be valid JSON, as a `Value`.
fn to_value(raw: Raw<'_>) -> Result<Value, ApiError> {
    serde_json::from_str(raw.get())
        .map_err(|e| ApiError::invalid(format!("The request body is not valid JSON: {e}")))
}

fn required<'a>(fields: &Fields<'a>, path: &str, name: &str) -> Result<Raw<'a>, ApiError> {
    field(fields, name).ok_or_else(|| missing(&format!("{path}.{name}")))
}

fn required_string(fields: &Fields, path: &str, name: &str) -> Result<String, ApiError> {
    let raw = required(fields, path, name)?;
    Ok(string(&format!("{path}.{name}"), raw)?.into_owned())
}

/// One item of `input`, appended to `out` as chat messages. `start` is where this request's
/// input begins in `out`: consecutive function calls join the assistant message before them,
/// but never one from the stored history.
fn input_item(
    path: &str,
    raw: Raw<'_>,
    out: &mut Vec<Value>,
    start: usize,
) -> Result<(), ApiError> {
    let fields = object(path, raw)?;
    let kind = match field(&fields, "type") {
        Some(t) => string(&format!("{path}.type"), t)?.into_owned(),
        // EasyInputMessage: `{"role", "content"}` with no type.
        None if field(&fields, "role").is_some() => "message".to_owned(),
        None => return Err(missing(&format!("{path}.type"))),
    };
    match kind.as_str() {
        "message" => out.push(message(path, &fields)?),
        "function_call" => {
            let call = json!({
                "id": required_string(&fields, path, "call_id")?,
                "type": "function",
                "function": {
                    "name": required_string(&fields, path, "name")?,
                    "arguments": required_string(&fields, path, "arguments")?,
                },
            });
            let last = out.len().checked_sub(1).filter(|&i| i >= start);
            match last.and_then(|i| out.get_mut(i)) {
                Some(Value::Object(m)) if m.get("role") == Some(&json!("assistant")) => {
                    match m.get_mut("tool_calls") {
                        Some(Value::Array(calls)) => calls.push(call),
                        _ => {
                            m.insert("tool_calls".into(), json!([call]));
                        }
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let call_id = required_string(&fields, path, "call_id")?;
            let output_path = format!("{path}.output");
            let output = required(&fields, path, "output")?;
            let text = if Kind::of(output) == Kind::String {
                string(&output_path, output)?.into_owned()
            } else {
                let (texts, images) = content_parts(&output_path, output)?;
                if images {
                    return Err(ApiError::invalid_param(
                        &output_path,
                        "Images in function call outputs are not supported by this endpoint.",
                    ));
                }
                texts
            };
            out.push(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
        }
        // The engine's reasoning is not fed back: chat templates drop it from past turns anyway.
        "reasoning" => {}
        other => {
            return Err(ApiError::invalid_param(
                format!("{path}.type"),
                format!(
                    "Input items of type '{other}' are not supported by this endpoint; \
                     supported are 'message', 'function_call', 'function_call_output' and 'reasoning'."
                ),
            ))
        }
    }
    Ok(())
}

/// A message item as a chat message. Text-only content becomes a string (parts joined by a
/// newline), which every engine's chat template takes; content with images stays a part list.
fn message(path: &str, fields: &Fields) -> Result<Value, ApiError> {
    let role_path = format!("{path}.role");
    let role = field(fields, "role").ok_or_else(|| missing(&role_path))?;
    let role = one_of(
        &role_path,
        role,
        &["user", "assistant", "system", "developer"],
    )?;
    // Engines know no `developer` role; it is the newer name for `system`.
    let role = if role == "developer" {
        "system"
    } else {
        role.as_ref()
    };
    let content_path = format!("{path}.content");
    let content = required(fields, path, "content")?;
    if Kind::of(content) == Kind::String {
        return Ok(json!({"role": role, "content": string(&content_path, content)?}));
    }
    let (text, has_images) = content_parts(&content_path, content)?;
    if !has_images {
        return Ok(json!({"role": role, "content": text}));
    }
    if role != "user" {
        return Err(ApiError::invalid_param(
            content_path,
            format!("Images are supported in user messages only, not in '{role}' ones."),
        ));
    }
    let mut parts = Vec::new();
    for (i, part) in array(&content_path, content)?.enumerate() {
        parts.push(chat_part(&format!("{content_path}[{i}]"), part)?);
    }
    Ok(json!({"role": role, "content": parts}))
}

/// Reads a content part list: its text parts joined by newlines, and whether it has images.
fn content_parts(path: &str, raw: Raw<'_>) -> Result<(String, bool), ApiError> {
    let mut texts = Vec::new();
    let mut images = false;
    for (i, part) in array(path, raw)?.enumerate() {
        match chat_part(&format!("{path}[{i}]"), part)? {
            Value::Object(m) if m.get("type") == Some(&json!("text")) => {
                texts.push(
                    m.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                );
            }
            _ => images = true,
        }
    }
    Ok((texts.join("\n"), images))
}

/// One Responses content part as a chat content part.
fn chat_part(path: &str, raw: Raw<'_>) -> Result<Value, ApiError> {
    let fields = object(path, raw)?;
    let kind = required_string(&fields, path, "type")?;
    match kind.as_str() {
        "input_text" | "output_text" => {
            Ok(json!({"type": "text", "text": required_string(&fields, path, "text")?}))
        }
        // A refusal replayed from an earlier answer is what the assistant said.
        "refusal" => {
            Ok(json!({"type": "text", "text": required_string(&fields, path, "refusal")?}))
        }
        "input_image" => {
            if field(&fields, "image_url").is_none() && field(&fields, "file_id").is_some() {
                return Err(ApiError::invalid_param(
                    format!("{path}.file_id"),
                    "Images by 'file_id' are not supported by this endpoint (it has no Files API); send 'image_url' (a URL or a data URL).",
                ));
            }
            let url = required_string(&fields, path, "image_url")?;
            let mut image = json!({"url": url});
            // Chat knows auto, low and high; other details (`original`) fall back to the default.
            if let Some(detail) = field(&fields, "detail") {
                let detail = string(&format!("{path}.detail"), detail)?;
                if ["auto", "low", "high"].contains(&detail.as_ref()) {
                    image["detail"] = json!(detail);
                }
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        other => Err(ApiError::invalid_param(
            format!("{path}.type"),
            format!(
                "Content parts of type '{other}' are not supported by this endpoint; \
                 supported are 'input_text', 'input_image' and 'output_text'."
            ),
        )),
    }
}

/// A Responses function tool (flat: `{"type", "name", ...}`) as a chat tool (nested under
/// `function`). Hosted tools (web search, file search, ...) have no chat counterpart.
fn function_tool(path: &str, raw: Raw<'_>) -> Result<Value, ApiError> {
    let fields = object(path, raw)?;
    let kind = required_string(&fields, path, "type")?;
    if kind != "function" {
        return Err(ApiError::invalid_param(
            format!("{path}.type"),
            format!(
                "Tools of type '{kind}' are not supported by this endpoint; only 'function' tools are."
            ),
        ));
    }
    let mut function = Map::new();
    function.insert(
        "name".into(),
        json!(required_string(&fields, path, "name")?),
    );
    if let Some(raw) = field(&fields, "description") {
        function.insert(
            "description".into(),
            json!(string(&format!("{path}.description"), raw)?),
        );
    }
    if let Some(raw) = field(&fields, "parameters") {
        expect_kind(&format!("{path}.parameters"), raw, &[Kind::Object])?;
        function.insert("parameters".into(), to_value(raw)?);
    }
    if let Some(raw) = field(&fields, "strict") {
        expect_kind(&format!("{path}.strict"), raw, &[Kind::Bool])?;
        function.insert("strict".into(), to_value(raw)?);
    }
    Ok(json!({"type": "function", "function": function}))
}

fn tool_choice(raw: Raw<'_>) -> Result<Value, ApiError> {
    const PATH: &str = "tool_choice";
    match Kind::of(raw) {
        Kind::String => Ok(json!(one_of(PATH, raw, &["auto", "none", "required"])?)),
        Kind::Object => {
            let fields = object(PATH, raw)?;
            let kind = required_string(&fields, PATH, "type")?;
            if kind != "function" {
                return Err(ApiError::invalid_param(
                    "tool_choice.type",
                    format!(
                        "'tool_choice' of type '{kind}' is not supported by this endpoint; use 'auto', 'none', 'required' or a function."
                    ),
                ));
            }
            let name = required_string(&fields, PATH, "name")?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(wrong_kind(PATH, "a string or an object", raw)),
    }
}

/// `text.format` as chat's `response_format`; `None` for plain text (the engine's default).
fn response_format(raw: Raw<'_>) -> Result<Option<Value>, ApiError> {
    let fields = object("text", raw)?;
    let Some(format) = field(&fields, "format") else {
        return Ok(None);
    };
    const PATH: &str = "text.format";
    let fields = object(PATH, format)?;
    let kind = field(&fields, "type").ok_or_else(|| missing("text.format.type"))?;
    match one_of(
        "text.format.type",
        kind,
        &["text", "json_object", "json_schema"],
    )?
    .as_ref()
    {
        "json_object" => Ok(Some(json!({"type": "json_object"}))),
        "json_schema" => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                json!(required_string(&fields, PATH, "name")?),
            );
            let raw = required(&fields, PATH, "schema")?;
            expect_kind("text.format.schema", raw, &[Kind::Object])?;
            schema.insert("schema".into(), to_value(raw)?);
            if let Some(raw) = field(&fields, "strict") {
                expect_kind("text.format.strict", raw, &[Kind::Bool])?;
                schema.insert("strict".into(), to_value(raw)?);
            }
            if let Some(raw) = field(&fields, "description") {
                schema.insert(
                    "description".into(),
                    json!(string("text.format.description", raw)?),
                );
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Ok(None),
    }
}
