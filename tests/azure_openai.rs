//! The Azure OpenAI routes, deployments and routing across upstreams and replicas, on real
//! sockets in front of mock engines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const AOAI: &str = "2024-10-21";
const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

fn deployment(path: &str) -> String {
    format!(
        "/openai/deployments/{}/{path}?api-version={AOAI}",
        MODEL.replace('/', "%2F")
    )
}

#[tokio::test]
async fn deployment_routes_reach_the_engine_with_the_deployments_model() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--model-name", "gpt-4o"]).await;
    // The client's `model` (null, absent, or another name) is replaced by the deployment's.
    for body in [
        r#"{"messages":[{"role":"user","content":"Hi"}],"model":null,"max_completion_tokens":5,"stream_options":null}"#,
        r#"{"messages":[{"role":"user","content":"Hi"}]}"#,
        r#"{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"Hi"}],"n":1,"logit_bias":{}}"#,
    ] {
        let r = proxy
            .post(
                &format!("/openai/deployments/gpt-4o/chat/completions?api-version={AOAI}"),
                body,
            )
            .await;
        assert_eq!(r.status(), 200, "{body}");
        let sent = mock
            .received_on("/v1/chat/completions")
            .pop()
            .unwrap()
            .json();
        assert_eq!(sent["model"], MODEL);
        assert_eq!(sent["messages"][0]["content"], "Hi");
    }
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    assert_eq!(
        sent["logit_bias"],
        json!({}),
        "unknown fields pass through on Azure OpenAI routes"
    );

    let r = proxy
        .post(
            &deployment("completions"),
            r#"{"prompt":"Once upon","max_tokens":3}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        mock.received_on("/v1/completions").pop().unwrap().json()["model"],
        MODEL
    );

    // The openai SDK asks for base64 by default; the engine is asked for floats.
    let r = proxy
        .post(
            &deployment("embeddings"),
            r#"{"input":["hello"],"model":"text-embedding-ada-002","encoding_format":"base64"}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"], "AAAAPwAAgL8AAIA+AAAAAA==");
    let sent = mock.received_on("/v1/embeddings").pop().unwrap().json();
    assert_eq!(
        (sent["encoding_format"].as_str(), sent["model"].as_str()),
        (Some("float"), Some(MODEL))
    );
}

#[tokio::test]
async fn azure_openai_errors_as_its_clients_see_them() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--api-key", "right"]).await;
    let url = proxy.url(&deployment("chat/completions"));

    let r = proxy
        .client
        .post(&url)
        .header("api-key", "wrong")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    let (status, code, msg) = azure_error(r).await;
    assert_eq!((status, code.as_str()), (401, "401"));
    assert!(
        msg.starts_with("Access denied due to invalid subscription key"),
        "{msg}"
    );

    let auth = |rb: reqwest::RequestBuilder| rb.header("api-key", "right");
    let no_version = proxy.url(&format!(
        "/openai/deployments/{}/chat/completions",
        MODEL.replace('/', "%2F")
    ));
    let (status, code, msg) = azure_error(
        auth(proxy.client.post(&no_version))
            .body(CHAT)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str(), msg.as_str()),
        (404, "404", "Resource not found")
    );

    let bad_version = proxy.url(&format!(
        "/openai/deployments/{}/chat/completions?api-version=2030-01-01",
        MODEL.replace('/', "%2F")
    ));
    let (status, code, msg) = azure_error(
        auth(proxy.client.post(&bad_version))
            .body(CHAT)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str(), msg.as_str()),
        (400, "BadRequest", "API version not supported")
    );

    let unknown = proxy.url(&format!(
        "/openai/deployments/gpt-5/chat/completions?api-version={AOAI}"
    ));
    let (status, code, msg) = azure_error(
        auth(proxy.client.post(&unknown))
            .body(CHAT)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "DeploymentNotFound"));
    assert!(
        msg.starts_with("The API deployment for this resource does not exist."),
        "{msg}"
    );

    for (path, body) in [
        ("chat/completions", r#"{"messages":[]}"#),
        ("completions", "{}"),
        ("embeddings", r#"{"input":5}"#),
    ] {
        let (status, _, _) = azure_error(
            auth(proxy.client.post(proxy.url(&deployment(path))))
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{path}");
    }
    assert!(mock.received_on("/v1/chat/completions").is_empty());
}

#[tokio::test]
async fn v1_routes_need_no_api_version() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(
            "/openai/v1/chat/completions",
            &format!(r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"Hi"}}]}}"#),
        )
        .await;
    assert_eq!(r.status(), 200);
    // One model served: requests without `model` go to it.
    assert_eq!(
        proxy
            .post("/openai/v1/chat/completions", CHAT)
            .await
            .status(),
        200
    );
    assert_eq!(
        proxy
            .post("/openai/v1/chat/completions?api-version=preview", CHAT)
            .await
            .status(),
        200
    );
    let (status, code, _) = azure_error(
        proxy
            .post(
                "/openai/v1/chat/completions",
                r#"{"model":"gpt-5","messages":[{"role":"user","content":"Hi"}]}"#,
            )
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "DeploymentNotFound"));
    let r = proxy
        .post("/openai/v1/embeddings", r#"{"input":"x"}"#)
        .await;
    assert_eq!(r.status(), 200);

    for path in [
        "/openai/v1/models",
        &format!("/openai/models?api-version={AOAI}"),
    ] {
        let v: Value = proxy.get(path).await.json().await.unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["id"], MODEL);
    }
}

#[tokio::test]
async fn responses_and_audio_where_the_engine_has_them() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--engine", "llamacpp"]).await;
    // Without /v1/responses the proxy serves the Responses API over chat completions.
    let r = proxy
        .post("/openai/v1/responses", r#"{"input":"Hi"}"#)
        .await;
    assert_eq!(r.status(), 200);
    assert!(mock.received_on("/v1/responses").is_empty());
    assert_eq!(mock.received_on("/v1/chat/completions").len(), 1);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"RIFF".to_vec()).file_name("a.wav"),
    );
    let r = proxy
        .client
        .post(proxy.url(&deployment("audio/transcriptions")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(azure_error(r).await.0, 400);
    let (status, code, _) = azure_error(
        proxy
            .post(&deployment("images/generations"), r#"{"prompt":"a cat"}"#)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "OperationNotSupported"));

    let proxy = Proxy::before(&mock, &["--engine", "vllm"]).await;
    let r = proxy
        .post(
            &format!("/openai/responses?api-version={AOAI}"),
            &format!(r#"{{"model":"{MODEL}","input":"Hi"}}"#),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(mock.received_on("/v1/responses").len(), 1);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"RIFF".to_vec()).file_name("a.wav"),
    );
    let r = proxy
        .client
        .post(proxy.url(&deployment("audio/transcriptions")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = mock.received_on("/v1/audio/transcriptions").pop().unwrap();
    assert!(sent.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    assert!(sent.body.windows(4).any(|w| w == b"RIFF"));
}

fn write_config(text: &str) -> tempfile_path::TempPath {
    tempfile_path::write(text)
}

mod tempfile_path {
    /// A file removed when dropped.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(text: &str) -> TempPath {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "aop-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        TempPath(path)
    }
}

#[tokio::test]
async fn one_proxy_fronts_a_chat_engine_and_an_embedding_engine() {
    let chat = Mock::start(Behaviour::default()).await;
    let embed = Mock::start(Behaviour {
        models: json(404, "{}"),
        info: json(200, INFO_TEI),
        ..Behaviour::default()
    })
    .await;
    let file = write_config(&format!(
        r#"
[[upstreams]]
name = "chat"
url = "{}"
engine = "vllm"

[[upstreams]]
name = "embed"
url = "{}"
engine = "tei"

[[deployments]]
name = "gpt-4o"
upstream = "chat"
model = "{MODEL}"
type = "chat-completion"

[[deployments]]
name = "text-embedding-3-small"
upstream = "embed"
model = "BAAI/bge-small-en-v1.5"
type = "embeddings"
"#,
        chat.url(),
        embed.url()
    ));
    let proxy = Proxy::start(&["--config", file.0.to_str().unwrap()]).await;
    let r = proxy
        .post(
            &format!("/openai/deployments/gpt-4o/chat/completions?api-version={AOAI}"),
            CHAT,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        chat.received_on("/v1/chat/completions")
            .pop()
            .unwrap()
            .json()["model"],
        MODEL
    );
    let r = proxy
        .post(
            &format!("/openai/deployments/text-embedding-3-small/embeddings?api-version={AOAI}"),
            r#"{"input":"x"}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        embed.received_on("/v1/embeddings").pop().unwrap().json()["model"],
        "BAAI/bge-small-en-v1.5"
    );
    assert!(chat.received_on("/v1/embeddings").is_empty());
    // Declared types refuse the wrong operation without asking any engine.
    let (status, _, msg) = azure_error(proxy.post(&format!("/openai/deployments/text-embedding-3-small/chat/completions?api-version={AOAI}"), CHAT).await).await;
    assert_eq!(status, 400, "{msg}");
    // Model Inference routes pick the deployment by `model`.
    let r = proxy
        .post(
            &format!("/embeddings?api-version={V}"),
            r#"{"input":"x","model":"text-embedding-3-small"}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    let (status, code, _) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (400, "BadRequest"),
        "several models: `model` is required"
    );
    let v: Value = proxy.get("/openai/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o", "text-embedding-3-small"]);
    let info: Value = proxy
        .get(&format!(
            "/info?api-version={V}&model=text-embedding-3-small"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["model_type"], "embeddings");
    assert_eq!(proxy.get("/ready").await.status(), 200);
}

fn replicas_config(urls: &[String]) -> tempfile_path::TempPath {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    write_config(&format!(
        "[[upstreams]]\nname = \"chat\"\nreplicas = [{}]\nengine = \"vllm\"\n\n[[deployments]]\nname = \"gpt-4o\"\nupstream = \"chat\"\nmodel = \"{MODEL}\"\ntype = \"chat-completion\"\n",
        list.join(", ")
    ))
}

#[tokio::test]
async fn replicas_share_the_load_and_a_dead_one_is_skipped() {
    let a = Mock::start(Behaviour::default()).await;
    let b = Mock::start(Behaviour::default()).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let file = replicas_config(&[a.url(), b.url(), dead]);
    let proxy = Proxy::start(&["--config", file.0.to_str().unwrap()]).await;
    let url = format!("/openai/deployments/gpt-4o/chat/completions?api-version={AOAI}");
    for _ in 0..40 {
        assert_eq!(
            proxy.post(&url, CHAT).await.status(),
            200,
            "a refused connect is retried on another replica"
        );
    }
    let (na, nb) = (
        a.received_on("/v1/chat/completions").len(),
        b.received_on("/v1/chat/completions").len(),
    );
    assert_eq!(na + nb, 40);
    assert!(na >= 5 && nb >= 5, "balanced: {na} / {nb}");
}

#[tokio::test]
async fn a_request_the_engine_started_is_never_retried() {
    let failing = Mock::start(Behaviour {
        chat: json(500, r#"{"error":{"message":"CUDA out of memory"}}"#),
        ..Behaviour::default()
    })
    .await;
    let good = Mock::start(Behaviour::default()).await;
    let file = replicas_config(&[failing.url(), good.url()]);
    let proxy = Proxy::start(&["--config", file.0.to_str().unwrap()]).await;
    let url = format!("/openai/deployments/gpt-4o/chat/completions?api-version={AOAI}");
    let mut failures = 0;
    for _ in 0..20 {
        let r = proxy.post(&url, CHAT).await;
        if r.status() == 500 {
            let (_, _, msg) = azure_error(r).await;
            assert!(msg.contains("CUDA out of memory"));
            failures += 1;
        }
    }
    let total = failing.received_on("/v1/chat/completions").len()
        + good.received_on("/v1/chat/completions").len();
    assert_eq!(total, 20, "each request reached exactly one engine");
    assert_eq!(failures, failing.received_on("/v1/chat/completions").len());
    assert!(failures > 0);
}

#[tokio::test]
async fn a_replica_that_comes_back_rejoins_the_rotation() {
    let a = Mock::start(Behaviour::default()).await;
    let late = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let file = replicas_config(&[a.url(), format!("http://{late}")]);
    let proxy = Proxy::start(&[
        "--config",
        file.0.to_str().unwrap(),
        "--health-check-interval",
        "0.1",
    ])
    .await;
    let url = format!("/openai/deployments/gpt-4o/chat/completions?api-version={AOAI}");
    for _ in 0..10 {
        assert_eq!(proxy.post(&url, CHAT).await.status(), 200);
    }
    assert_eq!(a.received_on("/v1/chat/completions").len(), 10);
    let b = Mock::start_at(&late.to_string(), Behaviour::default()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for _ in 0..40 {
        assert_eq!(proxy.post(&url, CHAT).await.status(), 200);
    }
    let nb = b.received_on("/v1/chat/completions").len();
    assert!(nb >= 5, "the replica is back in rotation: {nb} of 40");
}

#[tokio::test]
async fn answers_report_the_deployments_model() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--model-name", "gpt-4o"]).await;
    let url = format!("/openai/deployments/gpt-4o/chat/completions?api-version={AOAI}");
    let v: Value = proxy.post(&url, CHAT).await.json().await.unwrap();
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello there");
    mock.set(|b| {
        b.chat = Reply::Stream {
            chunks: vec![chunk("a"), "data: [DONE]\n\n".into()],
            gate: None,
        }
    });
    let text = proxy
        .post(
            &url,
            r#"{"messages":[{"role":"user","content":"Hi"}],"stream":true}"#,
        )
        .await
        .text()
        .await
        .unwrap();
    let first: Value = serde_json::from_str(
        text.split("\n\n")
            .next()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["model"], "gpt-4o");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn readiness_per_upstream() {
    let chat = Mock::start(Behaviour::default()).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let file = write_config(&format!(
        "[[upstreams]]\nname = \"chat\"\nurl = \"{}\"\n\n[[upstreams]]\nname = \"embed\"\nurl = \"http://{dead}\"\n",
        chat.url()
    ));
    let proxy = Proxy::start(&["--config", file.0.to_str().unwrap()]).await;
    assert_eq!(
        proxy.get("/ready").await.status(),
        503,
        "every upstream by default"
    );
    assert_eq!(proxy.get("/ready?upstream=chat").await.status(), 200);
    assert_eq!(proxy.get("/ready?upstream=embed").await.status(), 503);
    assert_eq!(proxy.get("/ready?upstream=nope").await.status(), 503);
    assert_eq!(proxy.get("/ready?any=true").await.status(), 200);
}

#[tokio::test]
async fn a_deployment_name_that_is_not_utf8_is_an_azure_400() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(
            &format!("/openai/deployments/gpt%FF/chat/completions?api-version={AOAI}"),
            r#"{"messages":[{"role":"user","content":"Hi"}]}"#,
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest", "{body}");
    assert!(mock.received_on("/v1/chat/completions").is_empty());
    // Another method on an operation route is the router's Azure-shaped 405.
    let r = proxy
        .client
        .get(proxy.url("/openai/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
}
