//! The proxy's HTTP/1 server, spoken to byte by byte over real sockets: keep-alive and
//! pipelining, request bodies by length and chunked, `Expect: 100-continue`, HTTP/1.0, HEAD,
//! refused framings and heads (each an Azure error body), idle and early-answer closes, and
//! HTTP/2 with prior knowledge beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lower-cased names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks the Azure error shape and returns its code.
    fn azure_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let code = self.json()["error"]["code"].as_str().unwrap().to_owned();
        assert_eq!(self.header("x-ms-error-code"), Some(code.as_str()));
        code
    }
}

/// A raw client connection that reads answers one at a time.
struct Client {
    io: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(proxy: &Proxy) -> Client {
        Client {
            io: TcpStream::connect(proxy.addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes; false at EOF.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(10), self.io.read(&mut chunk))
            .await
            .expect("the proxy went silent")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..i].to_vec()).unwrap();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(
                self.fill().await,
                "EOF inside a head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    async fn exactly(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "EOF inside a body");
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one answer; `head_only` for an answer to HEAD.
    async fn answer_to(&mut self, head_only: bool) -> Answer {
        let status_line = self.line().await;
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only || status == 204 || status == 304 || status < 200 {
            return answer;
        }
        if let Some(n) = answer.header("content-length") {
            let n: usize = n.parse().unwrap();
            answer.body = self.exactly(n).await;
        } else if answer.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&self.line().await, 16).unwrap();
                let data = self.exactly(size + 2).await;
                if size == 0 {
                    break;
                }
                answer.body.extend_from_slice(&data[..size]);
            }
        } else {
            while self.fill().await {}
            answer.body = std::mem::take(&mut self.buf);
        }
        answer
    }

    async fn answer(&mut self) -> Answer {
        self.answer_to(false).await
    }

    /// True when the proxy closes the connection (after what is buffered) within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn chat_post(extra_headers: &str, body: &str) -> String {
    format!(
        "POST /chat/completions?api-version={V} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra_headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let mut c = Client::connect(&proxy).await;
    let mut burst = String::from("GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    burst.push_str(&chat_post("", CHAT));
    burst.push_str("GET /no/such/route HTTP/1.1\r\nhost: x\r\n\r\n");
    c.send(burst.as_bytes()).await;
    let health = c.answer().await;
    assert_eq!(health.status, 200);
    assert!(
        health.header("date").is_some_and(|d| d.ends_with(" GMT")),
        "{health:?}"
    );
    let chat = c.answer().await;
    assert_eq!(chat.status, 200, "{chat:?}");
    assert_eq!(
        chat.json()["choices"][0]["message"]["content"],
        "Hello there"
    );
    let missing = c.answer().await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.azure_code(), "404");
    // Still open for more, and an empty line before a request line is ignored.
    c.send(b"\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(c.answer().await.status, 200);
    assert_eq!(mock.received_on("/v1/chat/completions").len(), 1);
}

#[tokio::test]
async fn a_request_with_the_openai_sdks_headers_is_served_and_its_id_forwarded() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let mut c = Client::connect(&proxy).await;
    let sdk = "X-Stainless-Lang: python\r\nx-stainless-retry-count: 0\r\nx-stainless-os: Linux\r\n";
    c.send(chat_post(&format!("{sdk}x-request-id: sdk-1\r\n{sdk}"), CHAT).as_bytes())
        .await;
    let chat = c.answer().await;
    assert_eq!(chat.status, 200, "{chat:?}");
    assert_eq!(chat.header("x-request-id"), Some("sdk-1"));
    let seen = mock.received_on("/v1/chat/completions");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get("x-request-id").unwrap(), "sdk-1");
    assert!(
        !seen[0]
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("x-stainless")),
        "{:?}",
        seen[0].headers
    );
}

#[tokio::test]
async fn chunked_request_bodies_reach_the_engine_whole() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let mut c = Client::connect(&proxy).await;
    c.send(
        format!(
            "POST /chat/completions?api-version={V} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    // The body in pieces, each its own write, one of them cut inside its size line.
    let pieces = [&CHAT[..10], &CHAT[10..25], &CHAT[25..]];
    for (i, p) in pieces.iter().enumerate() {
        let framed = format!("{:x};piece={i}\r\n{p}\r\n", p.len());
        let (a, b) = framed.split_at(1);
        c.send(a.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.send(b.as_bytes()).await;
    }
    c.send(b"0\r\nx-trailer: ignored\r\n\r\n").await;
    let answer = c.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let got = mock.received_on("/v1/chat/completions");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["messages"][0]["content"], "Hi");
    // The connection serves the next request.
    c.send(chat_post("", CHAT).as_bytes()).await;
    assert_eq!(c.answer().await.status, 200);
}

#[tokio::test]
async fn a_large_body_sent_in_pieces_reaches_the_engine_byte_for_byte() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let mut c = Client::connect(&proxy).await;
    // Larger than any read buffer, with escapes and multi-byte text, and sent with pauses so
    // that it arrives in many reads; a pipelined request follows it in the last write.
    let text = r#"caf\u00e9 \"quoted\" é "#.repeat(20_000);
    let body =
        format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}],"temperature":0.5}}"#);
    let request = chat_post("", &body);
    let bytes = request.as_bytes();
    let mut sent = 0;
    for size in [100, 7_000, 70_000, 150_000] {
        c.send(&bytes[sent..sent + size]).await;
        sent += size;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut rest = bytes[sent..].to_vec();
    rest.extend_from_slice(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    c.send(&rest).await;
    let answer = c.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(c.answer().await.status, 200);
    let got = mock.received_on("/v1/chat/completions");
    assert_eq!(got.len(), 1);
    // The client's fields go on as their very bytes (the proxy may add a field at the end).
    let sent = &body.as_bytes()[..body.len() - 1];
    let forwarded = &got[0].body;
    assert!(
        forwarded.starts_with(sent),
        "forwarded {} bytes, first difference at byte {:?}",
        forwarded.len(),
        forwarded.iter().zip(sent).position(|(a, b)| a != b)
    );
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--api-key", "k"]).await;
    let mut c = Client::connect(&proxy).await;
    c.send(
        format!(
            "POST /chat/completions?api-version={V} HTTP/1.1\r\nhost: x\r\napi-key: k\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            CHAT.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.line().await, "HTTP/1.1 100 Continue");
    assert_eq!(c.line().await, "");
    c.send(CHAT.as_bytes()).await;
    let answer = c.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // Refused before the body is read: no 100, the refusal, and the connection closes.
    let mut c = Client::connect(&proxy).await;
    c.send(
        b"POST /chat/completions HTTP/1.1\r\nhost: x\r\napi-key: wrong\r\nexpect: 100-continue\r\ncontent-length: 100000\r\n\r\n",
    )
    .await;
    let refused = c.answer().await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(5)).await);
    assert_eq!(mock.received_on("/v1/chat/completions").len(), 1);
}

#[tokio::test]
async fn http_1_0_closes_unless_asked_to_keep_alive() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let mut c = Client::connect(&proxy).await;
    c.send(b"GET /health HTTP/1.0\r\n\r\n").await;
    let answer = c.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(5)).await);

    let mut c = Client::connect(&proxy).await;
    for _ in 0..2 {
        c.send(b"GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .await;
        let answer = c.answer().await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("connection"), Some("keep-alive"));
        assert!(answer.header("content-length").is_some());
    }
    // HTTP/1.1 asking to close.
    let mut c = Client::connect(&proxy).await;
    c.send(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    assert_eq!(c.answer().await.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn head_answers_carry_no_body() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let mut c = Client::connect(&proxy).await;
    c.send(b"HEAD /health HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let head = c.answer_to(true).await;
    assert_eq!(head.status, 200);
    // Had the HEAD answer carried a body, this would read it as a status line.
    let get = c.answer().await;
    assert_eq!(get.status, 200);
    assert!(!get.body.is_empty());
}

#[tokio::test]
async fn ambiguous_or_broken_framing_is_refused_with_an_azure_400() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let path = format!("/chat/completions?api-version={V}");
    let cases = [
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n"),
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, gzip\r\n\r\n"),
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"),
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n"),
        format!("POST {path} HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
        "GET /health HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n".to_owned(),
        "\x16\x03\x01\x02\x00 not http at all\r\n\r\n".to_owned(),
    ];
    for case in cases {
        let mut c = Client::connect(&proxy).await;
        c.send(case.as_bytes()).await;
        let answer = c.answer().await;
        assert_eq!(answer.status, 400, "{case:?}: {answer:?}");
        assert_eq!(answer.azure_code(), "BadRequest", "{case:?}");
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(c.closed_within(Duration::from_secs(5)).await, "{case:?}");
    }
    // A chunked body that breaks mid-way is a 400 from the handler, and the engine sees nothing.
    let mut c = Client::connect(&proxy).await;
    c.send(
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX"
        )
        .as_bytes(),
    )
    .await;
    let answer = c.answer().await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(mock.received_on("/v1/chat/completions").is_empty());
}

#[tokio::test]
async fn oversized_heads_are_a_431_with_an_azure_body() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(
        &mock,
        &["--max-header-bytes", "8192", "--max-headers", "20"],
    )
    .await;
    for head in [
        format!(
            "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(16000)
        ),
        format!(
            "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n",
            "a".repeat(16000)
        ),
        format!(
            "GET /health HTTP/1.1\r\n{}\r\n",
            (0..25)
                .map(|i| format!("x-h{i}: v\r\n"))
                .collect::<String>()
        ),
        // The SDKs' own headers stay out of the header map but count all the same.
        format!(
            "GET /health HTTP/1.1\r\n{}\r\n",
            (0..25)
                .map(|i| format!("x-stainless-h{i}: v\r\n"))
                .collect::<String>()
        ),
    ] {
        let mut c = Client::connect(&proxy).await;
        c.send(head.as_bytes()).await;
        let answer = c.answer().await;
        assert_eq!(answer.status, 431, "{answer:?}");
        assert_eq!(answer.azure_code(), "RequestHeaderFieldsTooLarge");
    }
    assert_eq!(proxy.get("/health").await.status(), 200);
}

#[tokio::test]
async fn a_head_that_is_too_slow_is_a_408_naming_the_timeout() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--header-read-timeout", "0.3"]).await;
    let mut c = Client::connect(&proxy).await;
    c.send(b"GET /health HTTP/1.1\r\nhost: x\r\n").await;
    let answer = c.answer().await;
    assert_eq!(answer.status, 408);
    assert_eq!(answer.azure_code(), "RequestTimeout");
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("within 0.3 seconds"), "{message}");
    assert!(c.closed_within(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn idle_kept_alive_connections_close_after_the_keep_alive_timeout() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--keep-alive-timeout", "0.3"]).await;
    let mut c = Client::connect(&proxy).await;
    c.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(c.answer().await.status, 200);
    assert!(
        !c.closed_within(Duration::from_millis(100)).await,
        "closed too early"
    );
    assert!(
        c.closed_within(Duration::from_secs(3)).await,
        "idle connection left open"
    );
}

#[tokio::test]
async fn a_body_refused_early_is_answered_not_reset() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--max-body-size", "2000"]).await;
    let mut c = Client::connect(&proxy).await;
    let total = 4 << 20;
    c.send(
        format!(
            "POST /chat/completions?api-version={V} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let (mut read, mut write) = c.io.into_split();
    // The client keeps sending its body while the answer comes back.
    let writer = tokio::spawn(async move {
        let piece = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            if write.write_all(&piece).await.is_err() {
                break;
            }
            sent += piece.len();
        }
    });
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), read.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    writer.abort();
    assert!(mock.received_on("/v1/chat/completions").is_empty());
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_beside_http1() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let h2 = h2_client();
    let answer = h2
        .post(proxy.url(&format!("/chat/completions?api-version={V}")))
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_busy_ones_after_their_answer() {
    let mock = Mock::start(Behaviour::held_stream()).await;
    let mut proxy = Proxy::before(&mock, &["--shutdown-timeout", "10"]).await;
    let mut idle = Client::connect(&proxy).await;
    idle.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(idle.answer().await.status, 200);
    let mut busy = Client::connect(&proxy).await;
    busy.send(
        chat_post(
            "",
            r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#,
        )
        .as_bytes(),
    )
    .await;
    // The stream's head and first event, then it waits at the gate.
    assert_eq!(busy.line().await, "HTTP/1.1 200 OK");
    proxy.shutdown();
    assert!(
        idle.closed_within(Duration::from_secs(2)).await,
        "an idle kept-alive connection stays open after shutdown"
    );
    mock.release();
    // The stream ends whole, then the connection closes (its head went out before shutdown,
    // so the close is the end of the connection, not a `connection: close`).
    while busy.fill().await {}
    let text = String::from_utf8_lossy(&busy.buf);
    assert!(text.contains("data: [DONE]"), "{text}");
    tokio::time::timeout(Duration::from_secs(5), proxy.done.take().unwrap())
        .await
        .expect("the server exits once the stream is done")
        .unwrap();
}

/// Requests the fuzz test below mutates (each asks to close after its answer, so that a case
/// ends when the proxy closes rather than when the client gives up waiting).
const TEMPLATES: &[&str] = &[
    "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    "POST /chat/completions?api-version=2024-05-01-preview HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 46\r\n\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
    "POST /chat/completions?api-version=2024-05-01-preview HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n2e\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}\r\n0\r\n\r\n",
    "GET /health HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n",
    "POST /embeddings HTTP/1.1\r\nhost: x\r\nconnection: close\r\nexpect: 100-continue\r\ncontent-length: 13\r\n\r\n{\"input\":\"a\"}",
];

#[test]
fn whatever_a_client_sends_gets_an_http_answer_or_a_close_and_nothing_panics() {
    use proptest::prelude::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let panics = Arc::new(AtomicUsize::new(0));
    let hook = std::panic::take_hook();
    {
        let panics = Arc::clone(&panics);
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::SeqCst);
            eprintln!("panic: {info}");
        }));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (mock, proxy) = rt.block_on(async {
        let mock = Mock::start(Behaviour::default()).await;
        let proxy = Proxy::before(
            &mock,
            &["--header-read-timeout", "0.5", "--body-read-timeout", "0.5"],
        )
        .await;
        (mock, proxy)
    });
    let addr = proxy.addr;
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..4);
    let case = (
        prop::sample::select(TEMPLATES),
        edits,
        any::<prop::sample::Index>(),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&case, |(template, edits, split)| {
            let mut bytes = template.as_bytes().to_vec();
            for (at, op, b) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, b),
                    1 if i < bytes.len() => bytes[i] = b,
                    _ if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            // Longer than the head and body timeouts (0.5 s): a proxy that neither answers
            // nor closes by then has hung on this input.
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let cut = split.index(bytes.len() + 1);
            let _ = s.write_all(&bytes[..cut]);
            let _ = s.write_all(&bytes[cut..]);
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            let closed = loop {
                match s.read(&mut chunk) {
                    Ok(0) => break true,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                    // Silence: fine for a kept-alive connection that has answered.
                    Err(_) => break false,
                }
            };
            let text = String::from_utf8_lossy(&got);
            prop_assert!(
                !got.is_empty() || closed,
                "no answer and no close for {:?}",
                String::from_utf8_lossy(&bytes)
            );
            if !got.is_empty() {
                let status: Option<u16> = text
                    .strip_prefix("HTTP/1.1 ")
                    .and_then(|rest| rest.get(..3))
                    .and_then(|code| code.parse().ok());
                prop_assert!(
                    status.is_some_and(|c| (100..600).contains(&c)),
                    "not an HTTP answer: {text:?} for {:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            Ok(())
        })
        .unwrap();
    std::panic::set_hook(hook);
    assert_eq!(panics.load(Ordering::SeqCst), 0, "the proxy panicked");
    let still = rt.block_on(async { proxy.get("/health").await.status() });
    assert_eq!(still, 200);
    drop(mock);
}
