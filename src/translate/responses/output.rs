//! A chat completion as a Responses object: the output items, the usage, and the echoed
//! settings, built the same way for a whole answer and at the end of a stream.

use serde_json::{json, Map, Value};

use super::{item_id, ChatPlan};

/// The settings a Responses object echoes, in the order OpenAI writes them.
const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "model",
    "output",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "usage",
    "user",
    "metadata",
];

/// What the API answers for a setting the client did not send. The openai SDK requires
/// `parallel_tool_calls`, `tool_choice` and `tools`; the rest match OpenAI's own echo.
fn default_setting(key: &str) -> Value {
    match key {
        "parallel_tool_calls" | "store" => json!(true),
        "temperature" | "top_p" => json!(1.0),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        "truncation" => json!("disabled"),
        "metadata" => json!({}),
        _ => Value::Null,
    }
}

/// One output item as it builds up.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    /// The engine's `reasoning_content`, shown as the reasoning item's summary text.
    Reasoning { id: String, text: String },
    /// The answer's text.
    Message { id: String, text: String },
    /// One tool call.
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    pub(super) fn id(&self) -> &str {
        match self {
            Item::Reasoning { id, .. } | Item::Message { id, .. } | Item::Call { id, .. } => id,
        }
    }

    /// The item as announced by `response.output_item.added`: nothing generated yet.
    pub(super) fn added(&self) -> Value {
        match self {
            Item::Reasoning { id, .. } => json!({"id": id, "type": "reasoning", "summary": []}),
            Item::Message { id, .. } => json!({
                "id": id, "type": "message", "status": "in_progress", "content": [],
                "role": "assistant",
            }),
            Item::Call {
                id, call_id, name, ..
            } => json!({
                "id": id, "type": "function_call", "status": "in_progress", "arguments": "",
                "call_id": call_id, "name": name,
            }),
        }
    }

    /// The finished item with `status` (`completed` or `incomplete`; reasoning items carry none).
    pub(super) fn done(&self, status: &str) -> Value {
        match self {
            Item::Reasoning { id, text } => {
                json!({"id": id, "type": "reasoning", "summary": summary(text)})
            }
            Item::Message { id, text } => json!({
                "id": id, "type": "message", "status": status, "content": [output_text(text)],
                "role": "assistant",
            }),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
            } => json!({
                "id": id, "type": "function_call", "status": status, "arguments": arguments,
                "call_id": call_id, "name": name,
            }),
        }
    }
}

/// A message's text part.
pub(super) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

fn summary(text: &str) -> Value {
    if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    }
}

/// The response's status and `incomplete_details.reason` for a chat `finish_reason`.
pub(super) fn outcome(finish_reason: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish_reason {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The items' final JSON: the last one is the one the engine was writing when it stopped, so it
/// alone is `incomplete` when the response is.
pub(super) fn finished_items(items: &[Item], status: &str) -> Vec<Value> {
    let last = items.len().saturating_sub(1);
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let incomplete = status == "incomplete" && i == last;
            item.done(if incomplete {
                "incomplete"
            } else {
                "completed"
            })
        })
        .collect()
}

/// Everything a Responses object is built from.
pub(super) struct Parts<'a> {
    pub id: &'a str,
    pub created_at: u64,
    pub settings: &'a Value,
    pub status: &'a str,
    pub incomplete_reason: Option<&'a str>,
    pub error: Value,
    pub output: Vec<Value>,
    /// The engine's chat `usage`, if it sent one.
    pub usage: Option<&'a Value>,
}

/// The Responses object.
pub(super) fn response_object(parts: Parts) -> Value {
    let mut r = Map::new();
    r.insert("id".into(), json!(parts.id));
    r.insert("object".into(), json!("response"));
    r.insert("created_at".into(), json!(parts.created_at));
    r.insert("status".into(), json!(parts.status));
    r.insert("error".into(), parts.error);
    r.insert(
        "incomplete_details".into(),
        parts
            .incomplete_reason
            .map_or(Value::Null, |reason| json!({ "reason": reason })),
    );
    let mut output = Some(parts.output);
    for &key in ECHOED {
        let value = match key {
            "output" => Value::Array(output.take().unwrap_or_default()),
            "usage" => parts.usage.map_or(Value::Null, usage),
            _ => match parts.settings.get(key) {
                Some(v) if !v.is_null() => v.clone(),
                _ => default_setting(key),
            },
        };
        r.insert(key.into(), value);
    }
    Value::Object(r)
}

/// Chat `usage` in the Responses shape.
fn usage(chat: &Value) -> Value {
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let input = count(&chat["prompt_tokens"]);
    let output = count(&chat["completion_tokens"]);
    let total = chat["total_tokens"].as_u64().unwrap_or(input + output);
    json!({
        "input_tokens": input,
        // `cache_write_tokens` is required by the newest openai SDKs; engines report none.
        "input_tokens_details": {
            "cached_tokens": count(&chat["prompt_tokens_details"]["cached_tokens"]),
            "cache_write_tokens": 0,
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": count(&chat["completion_tokens_details"]["reasoning_tokens"]),
        },
        "total_tokens": total,
    })
}

/// The first choice of a chat completion (the Responses API has no `n`).
fn first_choice(chat: &Value) -> &Value {
    chat["choices"]
        .as_array()
        .and_then(|c| c.first())
        .unwrap_or(&Value::Null)
}

/// The engine's reasoning text: `reasoning_content` (vLLM, SGLang, llama.cpp) or `reasoning`
/// (vLLM's newer name).
pub(super) fn reasoning_of(message_or_delta: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| message_or_delta[*k].as_str())
}

/// A message's text: a string, or (rarely, from engines) a list of text parts.
fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// A tool call's arguments: a JSON string, though some engines send the object itself.
fn arguments_of(function: &Value) -> String {
    match &function["arguments"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A call's id, or one made from the response id when the engine sent none.
pub(super) fn call_id_or(given: Option<&str>, id: &str, n: usize) -> String {
    given
        .filter(|s| !s.is_empty())
        .map_or_else(|| item_id("call", id, n), str::to_owned)
}

/// The output items of a chat answer, in the order a stream would produce them: reasoning,
/// text, tool calls. A text message is always there unless other items are.
fn items_of(message: &Value, id: &str) -> Vec<Item> {
    let mut items = Vec::new();
    if let Some(text) = reasoning_of(message).filter(|t| !t.is_empty()) {
        items.push(Item::Reasoning {
            id: item_id("rs", id, 0),
            text: text.to_owned(),
        });
    }
    let calls: Vec<Item> = message["tool_calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(n, call)| Item::Call {
            id: item_id("fc", id, n),
            call_id: call_id_or(call["id"].as_str(), id, n),
            name: call["function"]["name"].as_str().unwrap_or("").to_owned(),
            arguments: arguments_of(&call["function"]),
        })
        .collect();
    let text = text_of(message);
    if !text.is_empty() || (items.is_empty() && calls.is_empty()) {
        items.push(Item::Message {
            id: item_id("msg", id, 0),
            text,
        });
    }
    items.extend(calls);
    items
}

/// Builds the Responses object for a (non-streamed) chat completion `chat`, answered to the
/// request planned as `plan`, under the response id `id`, created at `created_at` (Unix seconds).
pub fn from_chat(chat: &Value, plan: &ChatPlan, id: &str, created_at: u64) -> Value {
    let choice = first_choice(chat);
    let items = items_of(&choice["message"], id);
    let (status, incomplete_reason) = outcome(choice["finish_reason"].as_str());
    response_object(Parts {
        id,
        created_at,
        settings: &plan.settings,
        status,
        incomplete_reason,
        error: Value::Null,
        output: finished_items(&items, status),
        usage: chat.get("usage").filter(|u| u.is_object()),
    })
}

/// The chat-format assistant message for a chat completion's answer, to append to the stored
/// conversation; `None` if the completion has no message. Reasoning is left out, as chat
/// templates drop it from past turns.
pub fn assistant_message(chat: &Value) -> Option<Value> {
    let message = &first_choice(chat)["message"];
    if !message.is_object() {
        return None;
    }
    let calls: Vec<(String, String, String)> = message["tool_calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(n, call)| {
            (
                call["id"]
                    .as_str()
                    .map_or_else(|| format!("call_{n}"), str::to_owned),
                call["function"]["name"].as_str().unwrap_or("").to_owned(),
                arguments_of(&call["function"]),
            )
        })
        .collect();
    Some(assistant(&text_of(message), &calls))
}

/// The chat-format assistant message for a built Responses object (from [`from_chat`] or a
/// stream's [`super::ResponsesStream::response`]): its text and its function calls, with the
/// very call ids the client saw. `None` if the response has no output.
pub fn assistant_from_response(response: &Value) -> Option<Value> {
    let output = response["output"].as_array().filter(|o| !o.is_empty())?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in output {
        match item["type"].as_str() {
            Some("message") => {
                let parts = item["content"].as_array().map(Vec::as_slice);
                for part in parts.unwrap_or_default() {
                    text.push_str(part["text"].as_str().unwrap_or(""));
                }
            }
            Some("function_call") => calls.push((
                item["call_id"].as_str().unwrap_or("").to_owned(),
                item["name"].as_str().unwrap_or("").to_owned(),
                item["arguments"].as_str().unwrap_or("").to_owned(),
            )),
            _ => {}
        }
    }
    Some(assistant(&text, &calls))
}

/// A chat assistant message from its text and its calls (call id, name, arguments).
pub(super) fn assistant(text: &str, calls: &[(String, String, String)]) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), json!("assistant"));
    m.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            json!(text)
        },
    );
    if !calls.is_empty() {
        let calls: Vec<Value> = calls
            .iter()
            .map(|(call_id, name, arguments)| {
                json!({
                    "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": arguments},
                })
            })
            .collect();
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(m)
}
