//! The training run of a profile-guided build (`scripts/build-pgo.sh`): starts the proxy binary
//! it is given (built with `-Cprofile-generate`) in front of a mock engine of its own, sends it a
//! mix of what Azure clients send for a few seconds, and stops it with SIGTERM so that it exits
//! normally and writes its profile.
//!
//!     cargo run --release --example pgo_train -- PROXY_BINARY [SECONDS]
//!
//! The mix: Model Inference and Azure OpenAI chat completions, plain and streamed, short and
//! long (escapes and tools); embeddings; `/info`; and the usual mistakes (no `api-version`, bad
//! JSON, an unknown parameter, an unknown route), so that the error paths are laid out as rarely
//! taken rather than missing from the profile. Everything runs on loopback; nothing is kept.

use std::error::Error;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Failure = Box<dyn Error + Send + Sync>;

const MODELS: &str = r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"vllm"}]}"#;
const CHAT: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#;
const EMBEDDINGS: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.125,-0.5,0.25,1e-3]},{"object":"embedding","index":1,"embedding":[0.5,0.25,-0.125,2e-3]}],"model":"m","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
const COMPLETION: &str = r#"{"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"m","choices":[{"index":0,"text":" world","logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(binary) = args.next() else {
        eprintln!("usage: pgo_train PROXY_BINARY [SECONDS]");
        return ExitCode::from(2);
    };
    let seconds = match args.next().map(|s| s.parse::<u64>()) {
        None => 4,
        Some(Ok(s)) if s > 0 => s,
        Some(_) => {
            eprintln!("pgo_train: SECONDS must be a positive whole number");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgo_train: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(train(&binary, Duration::from_secs(seconds))) {
        Ok(n) => {
            eprintln!("pgo_train: {n} requests; the proxy exited normally");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgo_train: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn train(binary: &str, length: Duration) -> Result<u64, Failure> {
    let engine = TcpListener::bind("127.0.0.1:0").await?;
    let engine_port = engine.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = engine.accept().await {
            tokio::spawn(serve_engine(socket));
        }
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut proxy = tokio::process::Command::new(binary)
        .args([
            "--port",
            &port.to_string(),
            "--engine",
            "vllm",
            "--model-name",
            "m",
        ])
        .args(["--upstream-url", &format!("http://127.0.0.1:{engine_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await?;

    let until = Instant::now() + length;
    let mut workers = Vec::new();
    for worker in 0..8u64 {
        let (client, base) = (client.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut i = worker;
            while Instant::now() < until {
                one(&client, &base, i).await?;
                sent += 1;
                i += 1;
            }
            Ok::<u64, Failure>(sent)
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await??;
    }

    let pid = proxy.id().ok_or("the proxy exited early")?;
    // SIGTERM, not the SIGKILL of `Child::kill`: the profile is written when the process exits.
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !status.success() {
        return Err("kill -TERM failed".into());
    }
    let exit = tokio::time::timeout(Duration::from_secs(30), proxy.wait())
        .await
        .map_err(|_| "the proxy did not exit within 30 s of SIGTERM")??;
    if !exit.success() {
        return Err(format!("the proxy exited with {exit}").into());
    }
    Ok(total)
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the proxy did not answer /health within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const MI: &str = "api-version=2024-05-01-preview";
const AOAI: &str = "api-version=2024-10-21";

/// The `i`th request of the mix; most are the short chat request real traffic is mostly made of.
/// An answer other than the one expected (success, or an error for the mistakes) is a failure:
/// a training run that trained the wrong paths would go unnoticed otherwise.
async fn one(client: &reqwest::Client, base: &str, i: u64) -> Result<(), Failure> {
    let short = r#"{"messages":[{"role":"user","content":"Hello"}],"model":"m"}"#;
    let (path, body, key): (String, String, bool) = match i % 20 {
        0 => (format!("/chat/completions?{MI}"), stream_body(""), false),
        1 => (
            format!("/openai/deployments/m/chat/completions?{AOAI}"),
            stream_body(r#","stream_options":{"include_usage":true}"#),
            true,
        ),
        2 => (format!("/chat/completions?{MI}"), long_body(i), false),
        3 => (
            format!("/openai/deployments/m/chat/completions?{AOAI}"),
            long_body(i),
            true,
        ),
        4 => (
            format!("/embeddings?{MI}"),
            r#"{"input":["first text","second text"]}"#.into(),
            false,
        ),
        5 => (
            format!("/openai/deployments/m/embeddings?{AOAI}"),
            r#"{"input":"one text","encoding_format":"float"}"#.into(),
            true,
        ),
        6 => (
            format!("/openai/deployments/m/completions?{AOAI}"),
            r#"{"prompt":"Hello","max_tokens":4}"#.into(),
            true,
        ),
        7 => (
            "/openai/v1/chat/completions".into(),
            r#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}"#.into(),
            true,
        ),
        8 => match (i / 20) % 5 {
            // Mistakes: each gets an Azure error, and none reaches the engine.
            0 => ("/models/chat/completions".into(), short.into(), false),
            1 => (
                format!("/chat/completions?{MI}"),
                "{\"messages\":[".into(),
                false,
            ),
            2 => (
                format!("/chat/completions?{MI}"),
                r#"{"messages":[{"role":"user","content":"x"}],"bogus":1}"#.into(),
                false,
            ),
            3 => (format!("/nowhere?{MI}"), short.into(), false),
            _ => (format!("/chat/completions?{MI}"), "{}".into(), false),
        },
        9 => {
            let r = client.get(format!("{base}/info?{MI}")).send().await?;
            let status = r.status();
            r.bytes().await?;
            return expect(status.is_success(), status, "/info");
        }
        _ => (format!("/chat/completions?{MI}"), short.into(), false),
    };
    let mut request = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if key {
        request = request.header("api-key", "training");
    }
    let mut answer = request.send().await?;
    let status = answer.status();
    // Read to the end: streams are read event by event.
    while answer.chunk().await?.is_some() {}
    let mistake = i % 20 == 8;
    expect(status.is_success() != mistake, status, &path)
}

fn expect(ok: bool, status: reqwest::StatusCode, path: &str) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected {status} from {path}").into())
    }
}

/// A streamed chat request, with `extra` fields (Model Inference refuses `stream_options`).
fn stream_body(extra: &str) -> String {
    format!(
        r#"{{"messages":[{{"role":"system","content":"Be brief."}},{{"role":"user","content":"Hello"}}],"stream":true,"max_tokens":16{extra}}}"#
    )
}

/// A conversation of some length, with escapes and a tool, as `json.dumps` writes them.
fn long_body(i: u64) -> String {
    let mut messages = vec![
        r#"{"role":"system","content":"You are a helpful assistant. Answer \"briefly\"."}"#
            .to_string(),
    ];
    for turn in 0..(4 + i % 12) {
        messages.push(format!(
            r#"{{"role":"user","content":"Question {turn}: what is caf\u00e9 in \"French\"?\nPlease answer."}}"#
        ));
        messages.push(format!(
            r#"{{"role":"assistant","content":"Answer {turn}: it is a coffee shop \u2014 a place\tto sit."}}"#
        ));
    }
    messages
        .push(r#"{"role":"user","content":[{"type":"text","text":"And the weather?"}]}"#.into());
    format!(
        r#"{{"messages":[{}],"tools":[{{"type":"function","function":{{"name":"weather","description":"Weather of a city","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}},"required":["city"]}}}}}}],"temperature":0.2,"top_p":0.9,"max_tokens":64,"seed":{i}}}"#,
        messages.join(",")
    )
}

/// One engine connection: keep-alive HTTP/1.1, `Content-Length` bodies.
async fn serve_engine(mut socket: TcpStream) {
    let _ = socket.set_nodelay(true);
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let Some((head_len, body_len)) = read_head(&mut socket, &mut buf).await else {
            return;
        };
        while buf.len() < head_len + body_len {
            if !read_more(&mut socket, &mut buf).await {
                return;
            }
        }
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        let body = String::from_utf8_lossy(&buf[head_len..head_len + body_len]).into_owned();
        buf.drain(..head_len + body_len);
        let path = head.split(' ').nth(1).unwrap_or("/");
        let written = if path.ends_with("/chat/completions") && body.contains("\"stream\":true") {
            write_stream(&mut socket).await
        } else {
            let answer = match path {
                "/v1/models" => MODELS,
                p if p.ends_with("/chat/completions") => CHAT,
                p if p.ends_with("/embeddings") => EMBEDDINGS,
                p if p.ends_with("/completions") => COMPLETION,
                _ => "{}",
            };
            let out = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            socket.write_all(out.as_bytes()).await
        };
        if written.is_err() {
            return;
        }
    }
}

/// Reads until a whole head is in `buf`: its length and the body's (`Content-Length`).
async fn read_head(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(usize, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((end + 4, length));
        }
        if !read_more(socket, buf).await {
            return None;
        }
    }
}

/// Appends what the next read brings; false at the end of the connection or on an error.
async fn read_more(socket: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// A streamed chat answer: six content events, a usage event, `[DONE]`, chunked.
async fn write_stream(socket: &mut TcpStream) -> std::io::Result<()> {
    socket
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        .await?;
    for i in 0..8 {
        let data = match i {
            0 => r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#.to_string(),
            1..=5 => format!(r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{{"index":0,"delta":{{"content":"word{i} "}},"finish_reason":null}}]}}"#),
            6 => r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_string(),
            _ => r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#.to_string(),
        };
        let event = format!("data: {data}\n\n");
        socket
            .write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
            .await?;
    }
    let done = "data: [DONE]\n\n";
    socket
        .write_all(format!("{:x}\r\n{done}\r\n0\r\n\r\n", done.len()).as_bytes())
        .await
}
