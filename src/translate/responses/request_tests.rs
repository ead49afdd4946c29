//! Tests of the request translation and of the Responses object built from a whole answer.

use serde_json::{json, Value};

use super::*;
use crate::error::ApiError;

fn plan(body: Value) -> ChatPlan {
    plan_with(body, None)
}

fn plan_with(body: Value, history: Option<&[Value]>) -> ChatPlan {
    to_chat(body.to_string().as_bytes(), "m", history).unwrap()
}

fn chat_body(plan: &ChatPlan) -> Value {
    serde_json::from_slice(&plan.chat_body).unwrap()
}

fn error(body: Value) -> (Option<String>, String) {
    match to_chat(body.to_string().as_bytes(), "m", None).unwrap_err() {
        ApiError::InvalidRequest { message, param } => (param, message),
        ApiError::OperationNotSupported { message } => (None, message),
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn string_input_with_instructions_and_settings() {
    let p = plan(json!({
        "model": "ignored", "input": "Hi", "instructions": "Be brief.",
        "max_output_tokens": 50, "temperature": 0.5, "top_p": 0.9, "user": "u1",
        "metadata": {"k": "v"}, "reasoning": {"effort": "low"}, "store": false,
        "truncation": "auto", "include": ["x"], "future_field": 1,
    }));
    assert_eq!(
        chat_body(&p),
        json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "user": "u1",
        })
    );
    assert!(!p.stream);
    // Instructions are not part of the conversation a follow-up continues.
    assert_eq!(p.messages, vec![json!({"role": "user", "content": "Hi"})]);
    assert_eq!(p.settings["instructions"], "Be brief.");
    assert_eq!(p.settings["metadata"], json!({"k": "v"}));
    assert_eq!(p.settings["reasoning"], json!({"effort": "low"}));
    assert_eq!(p.settings["max_output_tokens"], 50);
    assert_eq!(p.settings["model"], "m");
    assert!(!p.wants_store());
    assert!(plan(json!({"input": "x"})).wants_store());
}

#[test]
fn stream_asks_for_usage() {
    let p = plan(json!({"input": "Hi", "stream": true}));
    assert!(p.stream);
    let body = chat_body(&p);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[test]
fn message_items_with_parts_and_images() {
    let p = plan(json!({"input": [
        {"role": "developer", "content": "Rules."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "https://x/cat.png", "detail": "high"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "original"},
        ]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [
            {"type": "output_text", "text": "A cat.", "annotations": []},
        ]},
        {"role": "user", "content": [
            {"type": "input_text", "text": "Line one"},
            {"type": "input_text", "text": "Line two"},
        ]},
    ]}));
    assert_eq!(
        chat_body(&p)["messages"],
        json!([
            {"role": "system", "content": "Rules."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "Line one\nLine two"},
        ])
    );
    assert_eq!(p.messages.len(), 4);
}

#[test]
fn tools_and_tool_choice() {
    let tool = json!({"type": "function", "name": "get_weather", "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": true});
    let p = plan(json!({"input": "Weather?", "tools": [tool],
        "tool_choice": {"type": "function", "name": "get_weather"}, "parallel_tool_calls": false}));
    let body = chat_body(&p);
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": true}}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(body["parallel_tool_calls"], false);
    // The echo keeps the Responses shapes.
    assert_eq!(p.settings["tools"], json!([tool]));
    assert_eq!(
        p.settings["tool_choice"],
        json!({"type": "function", "name": "get_weather"})
    );
    for choice in ["auto", "none", "required"] {
        let p = plan(json!({"input": "x", "tool_choice": choice}));
        assert_eq!(chat_body(&p)["tool_choice"], choice);
    }
}

#[test]
fn unsupported_tools_and_choices_are_named() {
    let (param, message) = error(json!({"input": "x", "tools": [
        {"type": "function", "name": "f"}, {"type": "web_search"}]}));
    assert_eq!(param.as_deref(), Some("tools[1].type"));
    assert!(message.contains("'web_search'"), "{message}");
    let (param, _) = error(json!({"input": "x", "tools": [{"type": "function"}]}));
    assert_eq!(param.as_deref(), Some("tools[0].name"));
    let (param, _) = error(json!({"input": "x", "tool_choice": {"type": "file_search"}}));
    assert_eq!(param.as_deref(), Some("tool_choice.type"));
    let (param, _) = error(json!({"input": "x", "tool_choice": "sometimes"}));
    assert_eq!(param.as_deref(), Some("tool_choice"));
}

#[test]
fn function_calls_and_outputs_become_tool_messages() {
    let p = plan(json!({"input": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{\"city\":\"Rome\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": "20C"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "25C"}]},
        {"type": "function_call", "call_id": "c3", "name": "w", "arguments": "{}"},
    ]}));
    assert_eq!(
        chat_body(&p)["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "20C"},
            {"role": "tool", "tool_call_id": "c2", "content": "25C"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ]},
        ])
    );
    let (param, _) =
        error(json!({"input": [{"type": "function_call", "name": "w", "arguments": "{}"}]}));
    assert_eq!(param.as_deref(), Some("input[0].call_id"));
}

#[test]
fn text_format_becomes_response_format() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let text =
        json!({"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": true}});
    let p = plan(json!({"input": "x", "text": text}));
    assert_eq!(
        chat_body(&p)["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": true}})
    );
    assert_eq!(p.settings["text"], text);
    let p = plan(json!({"input": "x", "text": {"format": {"type": "json_object"}}}));
    assert_eq!(
        chat_body(&p)["response_format"],
        json!({"type": "json_object"})
    );
    let p = plan(json!({"input": "x", "text": {"format": {"type": "text"}, "verbosity": "low"}}));
    assert!(chat_body(&p).get("response_format").is_none());
    let (param, _) =
        error(json!({"input": "x", "text": {"format": {"type": "json_schema", "name": "o"}}}));
    assert_eq!(param.as_deref(), Some("text.format.schema"));
    let (param, _) = error(json!({"input": "x", "text": {"format": {"type": "yaml"}}}));
    assert_eq!(param.as_deref(), Some("text.format.type"));
}

#[test]
fn previous_response_id_needs_its_history() {
    let body = json!({"input": "And then?", "previous_response_id": "resp_1", "instructions": "I"});
    assert_eq!(
        previous_response_id(body.to_string().as_bytes()).unwrap(),
        Some("resp_1".to_owned())
    );
    assert_eq!(previous_response_id(b"{\"input\":\"x\"}").unwrap(), None);
    let history = vec![
        json!({"role": "user", "content": "Once?"}),
        json!({"role": "assistant", "content": "Upon a time."}),
    ];
    let p = plan_with(body.clone(), Some(&history));
    assert_eq!(
        chat_body(&p)["messages"],
        json!([
            {"role": "system", "content": "I"},
            {"role": "user", "content": "Once?"},
            {"role": "assistant", "content": "Upon a time."},
            {"role": "user", "content": "And then?"},
        ])
    );
    assert_eq!(p.messages.len(), 3);
    assert_eq!(p.settings["previous_response_id"], "resp_1");
    let (param, message) = error(body);
    assert_eq!(param.as_deref(), Some("previous_response_id"));
    assert_eq!(message, "Previous response with id 'resp_1' not found.");
}

#[test]
fn bad_or_unsupported_input_is_a_400_naming_the_field() {
    let cases = [
        (json!({"model": "m"}), "input"),
        (json!({"input": 5}), "input"),
        (json!({"input": []}), "input"),
        (json!({"input": [{"content": "x"}]}), "input[0].type"),
        (
            json!({"input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (json!({"input": [{"role": "user"}]}), "input[0].content"),
        (
            json!({"input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
            "input[0].content[0].file_id",
        ),
        (
            json!({"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]}),
            "input[0].content",
        ),
        (json!({"input": "x", "temperature": "hot"}), "temperature"),
        (
            json!({"input": "x", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (json!({"input": "x", "stream": "yes"}), "stream"),
        (json!({"input": "x", "metadata": [1]}), "metadata"),
    ];
    for (body, path) in cases {
        let (param, _) = error(body.clone());
        assert_eq!(param.as_deref(), Some(path), "{body}");
    }
    for body in [
        json!({"input": "x", "background": true}),
        json!({"input": "x", "conversation": "conv_1"}),
        json!({"prompt": {"id": "p"}}),
    ] {
        let err = to_chat(body.to_string().as_bytes(), "m", None).unwrap_err();
        assert!(
            matches!(err, ApiError::OperationNotSupported { .. }),
            "{body}"
        );
    }
    assert!(to_chat(b"[1]", "m", None).is_err());
}

fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "engine-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 4}},
    })
}

#[test]
fn text_answer_as_a_response_object() {
    let p = plan(json!({"input": "Hi", "metadata": {"k": "v"}}));
    let chat = completion(json!({"role": "assistant", "content": "Hello!"}), "stop");
    let r = from_chat(&chat, &p, "resp_abc", 1700000000);
    assert_eq!(
        r,
        json!({
            "id": "resp_abc", "object": "response", "created_at": 1700000000,
            "status": "completed", "error": null, "incomplete_details": null,
            "instructions": null, "max_output_tokens": null, "model": "m",
            "output": [{"id": "msg_abc", "type": "message", "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello!"}],
                "role": "assistant"}],
            "parallel_tool_calls": true, "previous_response_id": null, "reasoning": null,
            "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15},
            "user": null, "metadata": {"k": "v"},
        })
    );
    assert_eq!(
        assistant_message(&chat),
        Some(json!({"role": "assistant", "content": "Hello!"}))
    );
    assert_eq!(assistant_from_response(&r), assistant_message(&chat));
    let conversation = p.conversation_with(assistant_from_response(&r));
    assert_eq!(conversation.len(), 2);
}

#[test]
fn length_stop_is_incomplete() {
    let p = plan(json!({"input": "Hi", "max_output_tokens": 5}));
    let chat = completion(
        json!({"role": "assistant", "content": "Hello the"}),
        "length",
    );
    let r = from_chat(&chat, &p, "resp_x", 1);
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["max_output_tokens"], 5);
}

#[test]
fn reasoning_and_tool_calls_become_items() {
    let p = plan(json!({"input": "Weather?", "tools": [{"type": "function", "name": "w"}]}));
    let message = json!({
        "role": "assistant", "content": null, "reasoning_content": "Need the tool.",
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}},
            {"type": "function", "function": {"name": "w", "arguments": {"c": 2}}},
        ],
    });
    let chat = completion(message, "tool_calls");
    let r = from_chat(&chat, &p, "resp_q", 1);
    assert_eq!(r["status"], "completed");
    assert_eq!(
        r["output"],
        json!([
            {"id": "rs_q", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Need the tool."}]},
            {"id": "fc_q", "type": "function_call", "status": "completed", "arguments": "{\"c\":1}",
             "call_id": "call_a", "name": "w"},
            {"id": "fc_q_1", "type": "function_call", "status": "completed", "arguments": "{\"c\":2}",
             "call_id": "call_q_1", "name": "w"},
        ])
    );
    assert_eq!(
        assistant_from_response(&r),
        Some(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}},
            {"id": "call_q_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":2}"}},
        ]}))
    );
    assert_eq!(
        assistant_message(&chat).unwrap()["tool_calls"][1]["id"],
        "call_1"
    );
    // vLLM's newer field name, next to text.
    let chat = completion(
        json!({"role": "assistant", "content": "Sunny.", "reasoning": "Think."}),
        "stop",
    );
    let r = from_chat(&chat, &p, "resp_q", 1);
    assert_eq!(r["output"][0]["type"], "reasoning");
    assert_eq!(r["output"][1]["content"][0]["text"], "Sunny.");
}

#[test]
fn odd_answers_still_make_valid_objects() {
    let p = plan(json!({"input": "Hi"}));
    let r = from_chat(&json!({"choices": []}), &p, "resp_e", 1);
    assert_eq!(r["output"][0]["content"][0]["text"], "");
    assert_eq!(r["usage"], Value::Null);
    assert_eq!(assistant_message(&json!({})), None);
    let chat = completion(
        json!({"role": "assistant", "content": ""}),
        "content_filter",
    );
    let r = from_chat(&chat, &p, "resp_e", 1);
    assert_eq!(r["incomplete_details"]["reason"], "content_filter");
}
