//! The Responses API: forwarded to engines that have it, served over chat completions for the
//! others (text, tools, streams, length stops, engine failures), with optional state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const TOOL_ANSWER: &str = r#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#;

#[tokio::test]
async fn text_answer_over_chat_completions() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let r = proxy
        .post(
            "/openai/v1/responses",
            r#"{"input":"Hi","instructions":"Be brief","max_output_tokens":20,"temperature":0.2}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], "Hello there");
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 2);
    assert_eq!(v["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(v["store"], false, "stateless by default");
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief"})
    );
    assert_eq!(sent["messages"][1]["role"], "user");
    assert_eq!(sent["max_tokens"], 20);
}

#[tokio::test]
async fn tool_calls_and_their_results() {
    let mock = Mock::start(Behaviour {
        chat: json(200, TOOL_ANSWER),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let r = proxy
        .post(
            "/openai/v1/responses",
            &json!({"input": "Weather in Paris?", "tools": tools, "tool_choice": "auto"})
                .to_string(),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let call = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], "{\"city\":\"Paris\"}");
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");

    // The result goes back as function_call_output: a tool message after the assistant's call.
    mock.set(|b| b.chat = json(200, CHAT_ANSWER));
    let follow_up = json!({
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
        ],
        "tools": tools
    });
    let v: Value = proxy
        .post("/openai/v1/responses", &follow_up.to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "completed");
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(
        messages[1]["content"], "",
        "llama-cpp-python gets \"\" instead of null content"
    );
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"})
    );
}

#[tokio::test]
async fn stream_events_and_length_stop() {
    let mock = Mock::start(Behaviour {
        chat: Reply::Stream {
            chunks: vec![
                chunk("Hel"),
                chunk("lo"),
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n".into(),
                "data: [DONE]\n\n".into(),
            ],
            gate: None,
        },
        other: json(200, r#"{"count":3}"#),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let r = proxy
        .post(
            "/openai/v1/responses",
            r#"{"input":"Hi","stream":true,"max_output_tokens":2}"#,
        )
        .await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types[0], "response.created");
    assert_eq!(types[1], "response.in_progress");
    assert!(types.contains(&"response.output_text.delta"));
    assert_eq!(*types.last().unwrap(), "response.incomplete");
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hello");
    let last = events.last().unwrap();
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    let seq: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "{seq:?}");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn engine_failure_mid_stream_is_response_failed() {
    let mock = Mock::start(Behaviour {
        chat: Reply::BreakAfter(chunk("partial")),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let text = proxy
        .post("/openai/v1/responses", r#"{"input":"Hi","stream":true}"#)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: response.failed"), "{text}");
}

#[tokio::test]
async fn state_is_kept_only_when_asked() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let (status, _, msg) = azure_error(
        proxy
            .post(
                "/openai/v1/responses",
                r#"{"input":"Hi","previous_response_id":"resp_x"}"#,
            )
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("keeps no conversation state"), "{msg}");
    assert_eq!(
        azure_error(proxy.get("/openai/v1/responses/resp_x").await)
            .await
            .0,
        404
    );

    let proxy = Proxy::before(
        &mock,
        &["--engine", "llama-cpp-python", "--responses-store", "10"],
    )
    .await;
    let first: Value = proxy
        .post("/openai/v1/responses", r#"{"input":"My name is Ada."}"#)
        .await
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().unwrap();
    assert_eq!(first["store"], true);
    let fetched: Value = proxy
        .get(&format!("/openai/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["id"], id);
    let second = json!({"input": "What is my name?", "previous_response_id": id});
    assert_eq!(
        proxy
            .post("/openai/v1/responses", &second.to_string())
            .await
            .status(),
        200
    );
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user"],
        "the history goes with the follow-up"
    );
    assert_eq!(sent["messages"][1]["content"], "Hello there");
    let deleted: Value = proxy
        .client
        .delete(proxy.url(&format!("/openai/v1/responses/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted"], true);
    assert_eq!(
        azure_error(proxy.get(&format!("/openai/v1/responses/{id}")).await)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn an_engine_with_the_route_gets_the_request_untouched() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--engine", "vllm"]).await;
    let body = r#"{"model":"meta-llama/Llama-3.1-8B-Instruct", "input":"Hi","store":false}"#;
    assert_eq!(proxy.post("/openai/v1/responses", body).await.status(), 200);
    assert_eq!(
        mock.received_on("/v1/responses").pop().unwrap().body,
        body.as_bytes()
    );
    assert!(mock.received_on("/v1/chat/completions").is_empty());
}

#[tokio::test]
async fn a_client_leaving_a_responses_stream_cancels_the_engine() {
    use futures_util::StreamExt;
    let mut chunks = vec![chunk("one")];
    chunks.extend((0..50).map(|i| chunk(&format!("more {i}"))));
    let mock = Mock::start(Behaviour {
        chat: Reply::Stream {
            chunks,
            gate: Some(1),
        },
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let r = proxy
        .post("/openai/v1/responses", r#"{"input":"Hi","stream":true}"#)
        .await;
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first)
        .unwrap()
        .contains("response.created"));
    drop(body);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    mock.release();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        mock.stream_cancelled.notified(),
    )
    .await
    .expect("the engine's stream is closed when the client goes away");
}
