//! The hot-path HTTP/1.1 client against engines that write raw HTTP: connection reuse, engines
//! that close idle connections, every body framing, and answers cut short.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1720000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
const STREAM: &str = r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#;

/// How the raw engine answers a chat request.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// `content-length`, connection kept.
    Length,
    /// `content-length`, then the engine closes the connection without saying so.
    LengthThenClose,
    /// No length: the body ends when the engine closes.
    UntilClose,
    /// A chunked event stream, written a few bytes at a time.
    ChunkedDribble,
    /// `content-length` larger than what is sent, then a close.
    Truncated,
    /// More bytes than `content-length` says, in the same write as the head.
    Overlong,
}

/// A raw engine: answers `/v1/models` and chat requests in `style`; counts the connections
/// that carried chat requests.
async fn raw_engine(style: Style) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(stream, style, Arc::clone(&count)));
        }
    });
    (url, connections)
}

/// Reads one request (head and content-length body); `None` at the end of the connection.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + len {
                let mut more = [0u8; 4096];
                let n = stream.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            buf.drain(..end + 4 + len);
            return Some(head);
        }
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

async fn serve(mut stream: TcpStream, style: Style, chat_connections: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut counted = false;
    while let Some(head) = read_request(&mut stream, &mut buf).await {
        if !counted && head.starts_with("post ") {
            counted = true;
            chat_connections.fetch_add(1, Ordering::SeqCst);
        }
        if head.starts_with("get /v1/models") {
            let body =
                r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"vllm"}]}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            continue;
        }
        match style {
            Style::Length | Style::LengthThenClose => {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
                if style == Style::LengthThenClose {
                    // Closed a moment later, as an engine's keep-alive timeout would.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return;
                }
            }
            Style::UntilClose => {
                let answer =
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{ANSWER}");
                stream.write_all(answer.as_bytes()).await.unwrap();
                return;
            }
            Style::Overlong => {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}garbage",
                    ANSWER.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
            Style::Truncated => {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
                    ANSWER.len() + 100,
                    &ANSWER[..40]
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
                return;
            }
            Style::ChunkedDribble => {
                let mut out = Vec::new();
                out.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                for event in [chunk("Hel"), chunk("lo"), "data: [DONE]\n\n".to_owned()] {
                    out.extend_from_slice(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
                }
                out.extend_from_slice(b"0\r\n\r\n");
                for piece in out.chunks(7) {
                    stream.write_all(piece).await.unwrap();
                    stream.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
}

async fn proxy_for(url: &str) -> Proxy {
    Proxy::start(&[
        "--upstream-url",
        url,
        "--engine",
        "vllm",
        "--allow-unauthenticated",
    ])
    .await
}

/// A non-streamed chat request through the proxy.
async fn chat(proxy: &Proxy) -> reqwest::Response {
    proxy
        .post(&format!("/chat/completions?api-version={V}"), CHAT)
        .await
}

#[tokio::test]
async fn answers_reuse_one_engine_connection() {
    let (url, connections) = raw_engine(Style::Length).await;
    let proxy = proxy_for(&url).await;
    for _ in 0..20 {
        let r = chat(&proxy).await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hello there");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn streams_reuse_the_connection_and_survive_any_read_boundaries() {
    let (url, connections) = raw_engine(Style::ChunkedDribble).await;
    let proxy = proxy_for(&url).await;
    for _ in 0..5 {
        let r = proxy
            .post(&format!("/chat/completions?api-version={V}"), STREAM)
            .await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let content: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| {
                let v: serde_json::Value = serde_json::from_str(d).unwrap();
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(content, "Hello");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        // The rest of the engine's stream (the end of its chunked encoding) is read after
        // [DONE] in the background, and only then is the connection free again.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_engine_closing_idle_connections_costs_no_request() {
    let (url, connections) = raw_engine(Style::LengthThenClose).await;
    let proxy = proxy_for(&url).await;
    for i in 0..6 {
        let r = chat(&proxy).await;
        assert_eq!(r.status(), 200, "request {i}");
        // Every other request comes after the engine has closed the last connection, the
        // others race with the close.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    assert!(connections.load(Ordering::SeqCst) >= 6);
}

#[tokio::test]
async fn bytes_past_the_content_length_are_dropped_with_their_connection() {
    let (url, connections) = raw_engine(Style::Overlong).await;
    let proxy = proxy_for(&url).await;
    for _ in 0..3 {
        let r = chat(&proxy).await;
        assert_eq!(r.status(), 200);
        // Exactly the declared body: the stray bytes are neither relayed nor read as the
        // start of the next answer, since the connection is not reused.
        assert_eq!(r.text().await.unwrap(), ANSWER);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_ended_by_close_is_relayed_whole() {
    let (url, _) = raw_engine(Style::UntilClose).await;
    let proxy = proxy_for(&url).await;
    for _ in 0..3 {
        let r = chat(&proxy).await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["usage"]["total_tokens"], 7);
    }
}

#[tokio::test]
async fn a_cut_short_answer_is_an_azure_error() {
    let (url, _) = raw_engine(Style::Truncated).await;
    let proxy = proxy_for(&url).await;
    let r = tokio::time::timeout(Duration::from_secs(10), chat(&proxy))
        .await
        .expect("no hang");
    let (status, code, message) = azure_error(r).await;
    assert_eq!(status, 502, "{code}: {message}");
    assert!(message.contains("closed"), "{message}");
}
