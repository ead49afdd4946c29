//! Metrics as an operator scrapes them: requests, durations, tokens, streams, failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The series counting Model Inference chat requests to `deployment` answered with `status`.
fn chat_requests(deployment: &str, status: u16) -> String {
    format!("azure_openai_proxy_requests_total{{route=\"/chat/completions\",api=\"model_inference\",deployment=\"{deployment}\",status=\"{status}\"}}")
}

/// The series counting chat tokens of `kind` (`input` or `output`) on `model`.
fn chat_tokens(model: &str, kind: &str) -> String {
    format!("gen_ai_client_token_usage_total{{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"{model}\",gen_ai_token_type=\"{kind}\"}}")
}

async fn scrape(proxy: &Proxy) -> String {
    let r = proxy.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

#[tokio::test]
async fn requests_tokens_streams_and_failures_are_counted() {
    let usage_chunk = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":13,\"total_tokens\":24}}\n\n";
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let model = "meta-llama/Llama-3.1-8B-Instruct";

    // A complete answer: usage 5 + 2.
    assert_eq!(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await
            .status(),
        200
    );
    // A stream with a usage chunk: 11 + 13.
    mock.set(|b| {
        b.chat = Reply::Stream {
            chunks: vec![
                chunk("a"),
                chunk("b"),
                usage_chunk.into(),
                "data: [DONE]\n\n".into(),
            ],
            gate: None,
        }
    });
    let r = proxy
        .post(
            &format!("/chat/completions?api-version={V}"),
            r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#,
        )
        .await;
    let _ = r.text().await.unwrap();
    // A client that leaves a stream early.
    mock.set(|b| {
        b.chat = Reply::Stream {
            chunks: vec![chunk("a"), chunk("b")],
            gate: Some(1),
        }
    });
    let r = proxy
        .post(
            &format!("/chat/completions?api-version={V}"),
            r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#,
        )
        .await;
    let mut body = r.bytes_stream();
    let _ = body.next().await;
    drop(body);
    // An engine failure.
    mock.set(|b| b.chat = json(500, r#"{"error":{"message":"boom"}}"#));
    assert_eq!(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await
            .status(),
        500
    );
    // A client error.
    assert_eq!(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), "{")
            .await
            .status(),
        400
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let m = scrape(&proxy).await;
    let ok = chat_requests(model, 200);
    assert_eq!(value(&m, &ok), Some(3.0), "{m}");
    let bad = chat_requests("", 400);
    assert_eq!(value(&m, &bad), Some(1.0), "{m}");
    let input = chat_tokens(model, "input");
    let output = chat_tokens(model, "output");
    assert_eq!(value(&m, &input), Some(16.0), "{m}");
    assert_eq!(value(&m, &output), Some(15.0), "{m}");
    let ttft = format!("gen_ai_server_time_to_first_token_seconds_count{{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"{model}\"}}");
    assert_eq!(value(&m, &ttft), Some(2.0), "{m}");
    assert_eq!(
        value(&m, "azure_openai_proxy_client_disconnects_total"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            "azure_openai_proxy_upstream_errors_total{kind=\"engine_5xx\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        value(&m, "azure_openai_proxy_overhead_seconds_count").unwrap() >= 3.0,
        "{m}"
    );
    assert_eq!(
        value(&m, "azure_openai_proxy_requests_in_flight"),
        Some(1.0),
        "only the scrape itself: {m}"
    );
    assert_eq!(
        value(&m, &format!("azure_openai_proxy_upstream_replica_healthy{{upstream=\"default\",replica=\"{}\"}}", mock.url())),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn metrics_need_a_key_on_the_main_port() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--api-key", "k"]).await;
    assert_eq!(proxy.get("/metrics").await.status(), 401);
    let r = proxy
        .client
        .get(proxy.url("/metrics"))
        .header("api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// What each request was forwarded to reaches its own observer, even when many are served at
/// once on one thread, interleaved on one HTTP/2 connection, and some fail before reaching
/// the engine.
#[tokio::test]
async fn concurrent_requests_are_each_counted_with_their_own_deployment_and_tokens() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let model = "meta-llama/Llama-3.1-8B-Instruct";
    let h2 = h2_client();
    let url = proxy.url(&format!("/chat/completions?api-version={V}"));
    let sends = (0..24).map(|i| {
        let (h2, url) = (h2.clone(), url.clone());
        async move {
            // Every third request is refused before it reaches the engine.
            let body = if i % 3 == 2 { "{" } else { CHAT };
            let r = h2
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            (r.status().as_u16(), r.bytes().await.unwrap().len())
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 16);
    assert_eq!(answers.iter().filter(|(s, _)| *s == 400).count(), 8);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let m = scrape(&proxy).await;
    let ok = chat_requests(model, 200);
    assert_eq!(value(&m, &ok), Some(16.0), "{m}");
    let bad = chat_requests("", 400);
    assert_eq!(value(&m, &bad), Some(8.0), "{m}");
    let wrong = chat_requests(model, 400);
    assert_eq!(
        value(&m, &wrong),
        None,
        "a refused request took another's report: {m}"
    );
    let input = chat_tokens(model, "input");
    let output = chat_tokens(model, "output");
    assert_eq!(value(&m, &input), Some(16.0 * 5.0), "{m}");
    assert_eq!(value(&m, &output), Some(16.0 * 2.0), "{m}");
    assert_eq!(
        value(&m, "azure_openai_proxy_overhead_seconds_count"),
        Some(16.0),
        "one overhead figure per forwarded request: {m}"
    );
}

/// A client that gives up before the engine answers is counted out of the in-flight gauge
/// (before, the gauge kept it for good: only an answer's end counted a request out).
#[tokio::test]
async fn a_request_abandoned_before_its_answer_leaves_the_in_flight_gauge() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    mock.set(|b| b.chat = Reply::Hang);
    let gave_up = proxy
        .client
        .post(proxy.url(&format!("/chat/completions?api-version={V}")))
        .header("content-type", "application/json")
        .body(CHAT)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the engine hangs, so the client times out"
    );
    let mut m = String::new();
    for _ in 0..50 {
        m = scrape(&proxy).await;
        if value(&m, "azure_openai_proxy_requests_in_flight") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        value(&m, "azure_openai_proxy_requests_in_flight"),
        Some(1.0),
        "only the scrape itself: {m}"
    );
}
