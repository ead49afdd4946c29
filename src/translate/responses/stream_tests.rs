//! Tests of the streamed Responses events.

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;

fn plan(body: Value) -> ChatPlan {
    to_chat(body.to_string().as_bytes(), "m", None).unwrap()
}

/// Splits SSE output into events, checking each is `event: <type>\ndata: <json>` with a
/// matching `type`.
fn events(bytes: &[Bytes]) -> Vec<Value> {
    let text: String = bytes
        .iter()
        .map(|b| std::str::from_utf8(b).unwrap())
        .collect();
    assert!(text.is_empty() || text.ends_with("\n\n"));
    text.split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name);
            data
        })
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "e",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
}

fn usage_chunk() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "e",
           "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
}

/// Runs a whole stream.
fn run(plan: &ChatPlan, chunks: &[Value]) -> Vec<Value> {
    let mut s = ResponsesStream::new(plan, "resp_s", 42);
    let mut out = vec![s.start()];
    out.extend(chunks.iter().map(|c| s.push(c)));
    out.push(s.finish());
    assert!(s.finish().is_empty() && s.push(&chunks[0]).is_empty());
    let events = events(&out);
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], n as u64, "{e}");
    }
    events
}

#[test]
fn text_stream() {
    let p = plan(json!({"input": "Hi", "stream": true}));
    let events = run(
        &p,
        &[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hel"}), None),
            chunk(json!({"content": "lo"}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(),
        ],
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["output"], json!([]));
    assert_eq!(
        events[2]["item"],
        json!({"id": "msg_s", "type": "message", "status": "in_progress", "content": [], "role": "assistant"})
    );
    assert_eq!(
        events[4],
        json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_s",
               "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []})
    );
    assert_eq!(events[6]["text"], "Hello");
    assert_eq!(events[7]["part"]["text"], "Hello");
    assert_eq!(events[8]["item"]["status"], "completed");
    let done = &events[9]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["total_tokens"], 10);
    assert_eq!(done["usage"]["input_tokens"], 7);
}

#[test]
fn tool_call_with_split_arguments() {
    let p = plan(
        json!({"input": "Weather?", "stream": true, "tools": [{"type": "function", "name": "w"}]}),
    );
    let call = |v: Value| chunk(json!({"tool_calls": [v]}), None);
    let events = run(
        &p,
        &[
            chunk(json!({"role": "assistant"}), None),
            call(json!({"index": 0, "id": "call_1", "type": "function",
                        "function": {"name": "w", "arguments": ""}})),
            call(json!({"index": 0, "function": {"arguments": "{\"city\":"}})),
            call(json!({"index": 0, "function": {"arguments": "\"Paris\"}"}})),
            // The second call's name arrives after its first argument piece.
            call(json!({"index": 1, "id": "call_2", "function": {"arguments": "{}"}})),
            call(json!({"index": 1, "function": {"name": "w"}})),
            chunk(json!({}), Some("tool_calls")),
        ],
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[2]["item"],
        json!({"id": "fc_s", "type": "function_call", "status": "in_progress", "arguments": "",
               "call_id": "call_1", "name": "w"})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.function_call_arguments.delta", "sequence_number": 3,
               "item_id": "fc_s", "output_index": 0, "delta": "{\"city\":"})
    );
    assert_eq!(events[6]["delta"], "{}");
    assert_eq!(events[6]["output_index"], 1);
    assert_eq!(events[7]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[10]["item"]["call_id"], "call_2");
    let output = &events[11]["response"]["output"];
    assert_eq!(output.as_array().unwrap().len(), 2);
    assert_eq!(output[1]["id"], "fc_s_1");
    assert_eq!(events[11]["response"]["usage"], Value::Null);
}

#[test]
fn reasoning_then_text() {
    let p = plan(json!({"input": "Hi", "stream": true}));
    let events = run(
        &p,
        &[
            chunk(json!({"reasoning_content": "Hmm"}), None),
            chunk(json!({"reasoning_content": "."}), None),
            chunk(json!({"content": "Hi!"}), Some("stop")),
        ],
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[6]["text"], "Hmm.");
    assert_eq!(events[11]["output_index"], 1);
}

#[test]
fn length_stop_is_incomplete() {
    let p = plan(json!({"input": "Hi", "stream": true, "max_output_tokens": 2}));
    let events = run(
        &p,
        &[
            chunk(json!({"content": "Hel"}), Some("length")),
            usage_chunk(),
        ],
    );
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    assert_eq!(events[events.len() - 2]["item"]["status"], "incomplete");
}

#[test]
fn empty_stream_still_has_a_message() {
    let p = plan(json!({"input": "Hi", "stream": true}));
    let events = run(&p, &[chunk(json!({}), Some("stop"))]);
    assert_eq!(events.len(), 8);
    assert_eq!(events[7]["response"]["output"][0]["content"][0]["text"], "");
}

#[test]
fn fail_reports_the_error() {
    let p = plan(json!({"input": "Hi", "stream": true}));
    let mut s = ResponsesStream::new(&p, "resp_f", 1);
    // `push` starts the stream itself.
    let mut out = vec![s.push(&chunk(json!({"content": "Par"}), None))];
    out.push(s.fail("server_error", "The engine stopped answering."));
    assert!(s.finish().is_empty() && s.fail("x", "y").is_empty());
    let events = events(&out);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
        ]
    );
    let r = &events[5]["response"];
    assert_eq!(r["status"], "failed");
    assert_eq!(
        r["error"],
        json!({"code": "server_error", "message": "The engine stopped answering."})
    );
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["output"][0]["content"][0]["text"], "Par");
    assert_eq!(s.response(), *r);
}

/// The final object of a stream is what `from_chat` builds for the same answer whole.
#[test]
fn streamed_final_equals_whole_answer() {
    let p = plan(
        json!({"input": "Hi", "stream": true, "instructions": "I", "temperature": 0.2,
                        "tools": [{"type": "function", "name": "w"}]}),
    );
    let usage = json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10});
    let cases: Vec<(Vec<Value>, Value, &str)> = vec![
        (
            vec![
                chunk(json!({"content": "A"}), None),
                chunk(json!({"content": "B"}), Some("stop")),
            ],
            json!({"role": "assistant", "content": "AB"}),
            "stop",
        ),
        (
            vec![
                chunk(json!({"reasoning_content": "R"}), None),
                chunk(json!({"content": "T"}), None),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "w", "arguments": "{}"}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "function": {"name": "w", "arguments": "[]"}}]}),
                    Some("tool_calls"),
                ),
            ],
            json!({"role": "assistant", "content": "T", "reasoning_content": "R", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"type": "function", "function": {"name": "w", "arguments": "[]"}},
            ]}),
            "tool_calls",
        ),
        (
            vec![chunk(json!({"content": "cut"}), Some("length"))],
            json!({"role": "assistant", "content": "cut"}),
            "length",
        ),
    ];
    for (mut chunks, message, finish_reason) in cases {
        chunks.push(json!({"choices": [], "usage": usage}));
        let events = run(&p, &chunks);
        let streamed = &events.last().unwrap()["response"];
        let chat = json!({"choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                          "usage": usage});
        assert_eq!(*streamed, from_chat(&chat, &p, "resp_s", 42), "{message}");
    }
}

#[test]
fn error_chunk_fails_the_response() {
    let p = plan(json!({"input": "Hi", "stream": true}));
    let mut s = ResponsesStream::new(&p, "resp_f", 1);
    let out = vec![
        s.start(),
        s.push(&json!({"error": {"message": "engine crashed", "code": "500"}})),
    ];
    let events = events(&out);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    assert_eq!(
        events[2]["response"]["error"],
        json!({"code": "server_error", "message": "engine crashed"})
    );
    assert_eq!(events[2]["response"]["output"], json!([]));
}
