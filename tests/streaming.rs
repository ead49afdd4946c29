//! Event streams: forwarded chunk by chunk, normalised, always ended, cancelled with the client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;

const STREAM_CHAT: &str = r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#;

#[tokio::test]
async fn first_chunk_arrives_before_the_engine_sends_the_last() {
    let mock = Mock::start(Behaviour {
        chat: Reply::Stream {
            chunks: vec![chunk("one"), chunk("two"), "data: [DONE]\n\n".into()],
            gate: Some(1),
        },
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(&format!("/chat/completions?api-version={V}"), STREAM_CHAT)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut body = r.bytes_stream();
    // The engine is holding the rest until released: this read can only succeed unbuffered.
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("first chunk must arrive while the engine still holds the rest")
        .unwrap()
        .unwrap();
    assert_eq!(std::str::from_utf8(&first).unwrap(), chunk("one"));
    mock.release();
    let mut rest = Vec::new();
    while let Some(c) = body.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        format!("{}data: [DONE]\n\n", chunk("two"))
    );
}

#[tokio::test]
async fn engine_quirks_are_normalised_for_the_sdk() {
    // TGI-style: no space after "data:", keep-alive comments, CRLF, event lines, and no [DONE].
    let mock = Mock::start(Behaviour {
        chat: Reply::Stream {
            chunks: vec![
                ": keep-alive\n\n".into(),
                "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n".into(),
                "event: message\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n".into(),
                ":\n\n".into(),
            ],
            gate: None,
        },
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(&format!("/chat/completions?api-version={V}"), STREAM_CHAT)
        .await;
    let text = r.text().await.unwrap();
    assert_eq!(
        text,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n\
         data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n\
         data: [DONE]\n\n"
    );
}

#[tokio::test]
async fn engine_breaking_off_mid_stream_ends_with_an_error_event() {
    let mock = Mock::start(Behaviour {
        chat: Reply::BreakAfter(chunk("partial")),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(&format!("/chat/completions?api-version={V}"), STREAM_CHAT)
        .await;
    assert_eq!(r.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .unwrap()
        .unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3, "{text}");
    assert_eq!(format!("{}\n\n", events[0]), chunk("partial"));
    let err: serde_json::Value =
        serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "UpstreamInvalidResponse");
    assert_eq!(events[2], "data: [DONE]");
}

#[tokio::test]
async fn client_disconnect_closes_the_engine_stream() {
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
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(&format!("/chat/completions?api-version={V}"), STREAM_CHAT)
        .await;
    let mut body = r.bytes_stream();
    let _ = body.next().await;
    drop(body);
    tokio::time::sleep(Duration::from_millis(50)).await;
    mock.release();
    // The engine must see the close: its stream fails to send within a few chunks.
    tokio::time::timeout(Duration::from_secs(5), mock.stream_cancelled.notified())
        .await
        .expect("the engine's stream is closed when the client goes away");
    mock.set(|b| b.chat = json(200, CHAT_ANSWER));
    assert_eq!(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn shutdown_lets_an_open_stream_finish() {
    let mock = Mock::start(Behaviour {
        chat: Reply::Stream {
            chunks: vec![chunk("one"), chunk("two"), "data: [DONE]\n\n".into()],
            gate: Some(1),
        },
        ..Behaviour::default()
    })
    .await;
    let mut proxy = Proxy::before(&mock, &["--shutdown-timeout", "10"]).await;
    let r = proxy
        .post(&format!("/chat/completions?api-version={V}"), STREAM_CHAT)
        .await;
    let mut body = r.bytes_stream();
    let _ = body.next().await.unwrap().unwrap();
    proxy.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are refused while the open stream drains.
    let refused = reqwest::Client::new()
        .get(proxy.url("/health"))
        .send()
        .await;
    assert!(refused.is_err(), "listener closed after shutdown");
    mock.release();
    let mut rest = Vec::new();
    while let Some(c) = body.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    assert!(String::from_utf8(rest)
        .unwrap()
        .ends_with("data: [DONE]\n\n"));
    tokio::time::timeout(Duration::from_secs(5), proxy.done.take().unwrap())
        .await
        .expect("server exits once the stream is done")
        .unwrap();
}

#[tokio::test]
async fn an_engine_that_ignores_stream_still_gives_the_client_a_stream() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(&format!("/chat/completions?api-version={V}"), STREAM_CHAT)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let first: serde_json::Value =
        serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["content"], "Hello there");
    assert_eq!(first["choices"][0]["finish_reason"], "stop");
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
}

#[tokio::test]
async fn a_non_json_answer_is_a_502_not_a_200() {
    let mock = Mock::start(Behaviour {
        chat: Reply::Fixed(200, "application/json", "<html>oops</html>".into()),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &[]).await;
    for body in [CHAT, STREAM_CHAT] {
        let (status, code, _) = azure_error(
            proxy
                .post(&format!("/chat/completions?api-version={V}"), body)
                .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (502, "UpstreamInvalidResponse"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn usage_chunk_is_made_for_engines_that_do_not_send_it() {
    let mock = Mock::start(Behaviour {
        chat: Reply::Stream {
            chunks: vec![
                chunk("one"),
                chunk("two"),
                chunk("three"),
                "data: [DONE]\n\n".into(),
            ],
            gate: None,
        },
        other: json(200, r#"{"count":7}"#),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let body = r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;
    let text = proxy
        .post("/openai/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 5, "{text}");
    let usage: serde_json::Value =
        serde_json::from_str(events[3].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        usage["usage"],
        serde_json::json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    );
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(events[4], "data: [DONE]");
    let counted = mock.received_on("/extras/tokenize/count");
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].json()["input"], "Hi\n");
    // Without include_usage nothing is added; engines that send usage are left alone.
    let plain = r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#;
    let text = proxy
        .post("/openai/v1/chat/completions", plain)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("usage"), "{text}");
}
