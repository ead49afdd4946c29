//! Faults injected on both sides: a loading engine, a silent stream, a flood of requests, slow
//! and oversized clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;

const STREAM_CHAT: &str = r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#;

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn declared_config(url: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("aop-resilience-{}-{n}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!("[[upstreams]]\nname = \"e\"\nurl = \"{url}\"\nengine = \"vllm\"\n\n[[deployments]]\nname = \"m\"\nupstream = \"e\"\ntype = \"chat-completion\"\n"),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_loading_engine_is_retried_then_answered_with_503() {
    let addr = free_addr();
    let config = declared_config(&format!("http://{addr}"));
    let proxy = Proxy::start(&[
        "--config",
        config.to_str().unwrap(),
        "--upstream-connect-retries",
        "4",
    ])
    .await;
    let url = "/openai/deployments/m/chat/completions?api-version=2024-10-21";
    // Nothing listens yet: bounded retries, then 503 with Retry-After.
    let started = std::time::Instant::now();
    let r = proxy.post(url, CHAT).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "retried for a while"
    );
    assert_eq!(r.headers()["retry-after"], "5");
    let (status, code, msg) = azure_error(r).await;
    assert_eq!((status, code.as_str()), (503, "ServiceUnavailable"));
    assert!(msg.contains("refuses connections"), "{msg}");
    // The engine comes up while a request is retrying: the request gets through.
    let pending = tokio::spawn({
        let client = proxy.client.clone();
        let full = proxy.url(url);
        async move { client.post(full).body(CHAT).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mock = Mock::start_at(&addr.to_string(), Behaviour::default()).await;
    assert_eq!(pending.await.unwrap(), 200);
    assert_eq!(mock.received_on("/v1/chat/completions").len(), 1);
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_silent_stream_ends_with_an_error_event() {
    let mock = Mock::start(Behaviour {
        chat: Reply::Stream {
            chunks: vec![chunk("one"), chunk("never")],
            gate: Some(1),
        },
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--upstream-idle-timeout", "0.3"]).await;
    let r = proxy
        .post(&format!("/chat/completions?api-version={V}"), STREAM_CHAT)
        .await;
    let text = tokio::time::timeout(Duration::from_secs(5), r.text())
        .await
        .expect("no hang")
        .unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3, "{text}");
    assert!(events[1].contains("UpstreamTimeout"), "{text}");
    assert_eq!(events[2], "data: [DONE]");
}

#[tokio::test]
async fn concurrency_limit_queues_then_answers_429() {
    let mock = Mock::start(Behaviour::held_stream()).await;
    let proxy = Proxy::before(
        &mock,
        &[
            "--max-concurrent-requests",
            "1",
            "--max-queued-requests",
            "1",
        ],
    )
    .await;
    let url = format!("/chat/completions?api-version={V}");
    // The first stream holds the only slot while it lives.
    let first = proxy.post(&url, STREAM_CHAT).await;
    let mut first = first.bytes_stream();
    let _ = first.next().await.unwrap().unwrap();
    // The second waits in the queue.
    let second = tokio::spawn({
        let client = proxy.client.clone();
        let full = proxy.url(&url);
        async move {
            client
                .post(full)
                .body(STREAM_CHAT)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third finds the queue full.
    let r = proxy.post(&url, STREAM_CHAT).await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["retry-after-ms"], "1000");
    let (status, code, _) = azure_error(r).await;
    assert_eq!((status, code.as_str()), (429, "429"));
    // Probes never wait.
    assert_eq!(proxy.get("/health").await.status(), 200);
    assert_eq!(
        mock.received_on("/v1/chat/completions").len(),
        1,
        "the engine is not flooded"
    );
    mock.release();
    while first.next().await.is_some() {}
    mock.release();
    let text = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(mock.received_on("/v1/chat/completions").len(), 2);
}

fn raw_exchange(addr: std::net::SocketAddr, request: &[u8], then_wait: Duration) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    std::thread::sleep(then_wait);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_are_cut_off() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(
        &mock,
        &[
            "--body-read-timeout",
            "0.3",
            "--header-read-timeout",
            "0.3",
            "--max-headers",
            "20",
        ],
    )
    .await;
    let addr = proxy.addr;
    let answers = tokio::task::spawn_blocking(move || {
        let body_slow = raw_exchange(
            addr,
            b"POST /chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"messages\":",
            Duration::from_millis(0),
        );
        let head_slow = raw_exchange(addr, b"POST /chat/completions HTTP/1.1\r\nhost: x\r\n", Duration::from_millis(0));
        let mut many = String::from("GET /health HTTP/1.1\r\nhost: x\r\n");
        for i in 0..40 {
            many.push_str(&format!("x-h{i}: v\r\n"));
        }
        many.push_str("connection: close\r\n\r\n");
        let many_headers = raw_exchange(addr, many.as_bytes(), Duration::from_millis(0));
        let garbage = raw_exchange(addr, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n", Duration::from_millis(0));
        (body_slow, head_slow, many_headers, garbage)
    })
    .await
    .unwrap();
    assert!(answers.0.starts_with("HTTP/1.1 408"), "{}", answers.0);
    assert!(answers.0.contains("RequestTimeout"), "{}", answers.0);
    assert!(
        answers.1.is_empty() || answers.1.starts_with("HTTP/1.1 408"),
        "slowloris is cut: {:?}",
        answers.1
    );
    assert!(answers.2.starts_with("HTTP/1.1 431"), "{}", answers.2);
    assert!(
        answers.3.is_empty() || answers.3.starts_with("HTTP/1.1 400"),
        "{:?}",
        answers.3
    );
    assert!(mock.received_on("/v1/chat/completions").is_empty());
    // The proxy still serves.
    assert_eq!(proxy.get("/health").await.status(), 200);
}

#[tokio::test]
async fn redirects_are_not_followed_and_hop_by_hop_headers_stay_put() {
    let elsewhere = Mock::start(Behaviour::default()).await;
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    // An engine that answers with a redirect: the proxy never follows it.
    mock.set(|b| {
        b.chat = Reply::Fixed(
            302,
            "application/json",
            format!("{{\"location\":\"{}\"}}", elsewhere.url()),
        )
    });
    let (status, _, _) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await,
    )
    .await;
    assert_eq!(status, 502);
    assert!(elsewhere.received().is_empty());
    // Client hop-by-hop and other headers do not reach the engine; its Host is the engine's.
    mock.set(|b| b.chat = json(200, CHAT_ANSWER));
    let r = proxy
        .client
        .post(proxy.url(&format!("/chat/completions?api-version={V}")))
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "1")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic abc")
        .header("cookie", "session=1")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for name in [
        "transfer-encoding",
        "proxy-authorization",
        "te",
        "upgrade",
        "keep-alive",
        "connection",
    ] {
        assert!(
            r.headers().get(name).is_none() || name == "connection",
            "{name} in the answer"
        );
    }
    let sent = mock.received_on("/v1/chat/completions").pop().unwrap();
    for name in ["x-secret-hop", "te", "proxy-authorization", "cookie"] {
        assert!(
            sent.headers.get(name).is_none(),
            "{name} reached the engine"
        );
    }
    assert_eq!(sent.headers["host"], mock.addr.to_string());
}

#[tokio::test]
async fn a_huge_engine_answer_is_a_502() {
    let big = format!(
        r#"{{"id":"x","object":"chat.completion","choices":[],"pad":"{}"}}"#,
        "a".repeat(10_000)
    );
    let mock = Mock::start(Behaviour {
        chat: json(200, &big),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--max-upstream-body-size", "4096"]).await;
    let (status, code, msg) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (502, "UpstreamInvalidResponse"));
    assert!(msg.contains("--max-upstream-body-size"), "{msg}");
}

#[tokio::test]
async fn readiness_turns_503_as_soon_as_draining_starts() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    assert_eq!(proxy.get("/ready").await.status(), 200);
    // What SIGTERM does first (see `run`): readiness answers 503 while open requests finish.
    proxy
        .state
        .draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = proxy.get("/ready").await;
    let (status, _, msg) = azure_error(r).await;
    assert_eq!(status, 503);
    assert!(msg.contains("shutting down"), "{msg}");
    assert_eq!(proxy.get("/health").await.status(), 200);
}
