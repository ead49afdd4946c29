//! What the engine answers, and how the proxy turns it into Azure's: its errors, its absence,
//! its model list in each engine's shape, its embeddings in every encoding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn engine_errors_keep_status_and_message() {
    // A chat engine: it refuses embeddings, as vLLM does for a generative model.
    let mock = Mock::start(Behaviour {
        embeddings: refusal(),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &[]).await;
    let cases = [
        (
            json(
                400,
                r#"{"object":"error","message":"This model's maximum context length is 8192 tokens","type":"BadRequestError","param":null,"code":400}"#,
            ),
            400,
            "maximum context length",
        ),
        (
            json(
                422,
                r#"{"error":"Input validation error: `max_new_tokens` must be > 0","error_type":"validation"}"#,
            ),
            422,
            "Input validation error",
        ),
        (
            json(
                500,
                r#"{"error":{"message":"can only concatenate str","type":"internal_server_error","param":null,"code":null}}"#,
            ),
            500,
            "can only concatenate str",
        ),
        (json(404, r#"{"detail":"Not Found"}"#), 404, "Not Found"),
        (
            Reply::Fixed(503, "text/plain", "engine overloaded".into()),
            503,
            "engine overloaded",
        ),
        (
            json(
                429,
                r#"{"error":{"message":"Too many requests","code":"429"}}"#,
            ),
            429,
            "Too many requests",
        ),
    ];
    for (reply, status, needle) in cases {
        mock.set(|b| b.chat = reply);
        let (got, _, msg) = azure_error(
            proxy
                .post(&format!("/chat/completions?api-version={V}"), CHAT)
                .await,
        )
        .await;
        assert_eq!(got, status, "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
}

#[tokio::test]
async fn unreachable_and_slow_engines() {
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy = Proxy::start(&["--upstream-url", &format!("http://127.0.0.1:{port}")]).await;
    let (status, code, _) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (503, "ServiceUnavailable"));
    let r = proxy.get("/ready").await;
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let (status, code, _) = azure_error(r).await;
    assert_eq!((status, code.as_str()), (503, "ServiceUnavailable"));
    assert_eq!(proxy.get("/health").await.status(), 200);
    let (status, _, _) = azure_error(proxy.get(&format!("/info?api-version={V}")).await).await;
    assert_eq!(status, 503);

    let mock = Mock::start(Behaviour {
        chat: Reply::Hang,
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &["--upstream-headers-timeout", "0.3"]).await;
    let (status, code, _) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (504, "UpstreamTimeout"));
}

#[tokio::test]
async fn ready_follows_the_engine() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy.get("/ready").await;
    assert_eq!(r.status(), 200);
    mock.set(|b| b.models = json(503, r#"{"error":"loading"}"#));
    let (status, _, _) = azure_error(proxy.get("/ready").await).await;
    assert_eq!(status, 503);
    mock.set(|b| b.models = json(200, MODELS_VLLM));
    assert_eq!(proxy.get("/ready").await.status(), 200);
}

async fn info_for(behaviour: Behaviour, args: &[&str]) -> Value {
    let mock = Mock::start(behaviour).await;
    let proxy = Proxy::before(&mock, args).await;
    let r = proxy.get(&format!("/models/info?api-version={V}")).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn info_from_each_engines_shape() {
    // vLLM: a chat model (the embeddings probe is refused as vLLM refuses it).
    let refuse = json(
        400,
        r#"{"object":"error","message":"The model does not support Embeddings API","type":"BadRequestError","code":400}"#,
    );
    let v = info_for(
        Behaviour {
            embeddings: refuse.clone(),
            ..Behaviour::default()
        },
        &[],
    )
    .await;
    assert_eq!(
        v,
        json!({"model_name":"meta-llama/Llama-3.1-8B-Instruct","model_type":"chat-completion","model_provider_name":"meta-llama"})
    );
    // vLLM serving an embedding model: the probe answers vectors.
    let v = info_for(Behaviour::default(), &[]).await;
    assert_eq!(v["model_type"], "embeddings");
    // llama.cpp: no `created`, owned_by the server.
    let v = info_for(
        Behaviour {
            models: json(200, MODELS_LLAMACPP),
            embeddings: refuse.clone(),
            ..Behaviour::default()
        },
        &[],
    )
    .await;
    assert_eq!(
        v,
        json!({"model_name":"smollm2","model_type":"chat-completion","model_provider_name":"llama.cpp"})
    );
    // SGLang.
    let v = info_for(
        Behaviour {
            models: json(200, MODELS_SGLANG),
            embeddings: refuse.clone(),
            ..Behaviour::default()
        },
        &[],
    )
    .await;
    assert_eq!(v["model_name"], "Qwen/Qwen2.5-7B-Instruct");
    assert_eq!(v["model_provider_name"], "Qwen");
    // TGI: its /info says text generation, no probe needed.
    let v = info_for(
        Behaviour {
            models: json(200, MODELS_TGI),
            info: json(200, INFO_TGI),
            ..Behaviour::default()
        },
        &[],
    )
    .await;
    assert_eq!(
        v,
        json!({"model_name":"mistralai/Mistral-7B-Instruct-v0.3","model_type":"chat-completion","model_provider_name":"mistralai"})
    );
    // TEI: no /v1/models at all; /info says embedding.
    let v = info_for(
        Behaviour {
            models: json(404, r#"{"error":"Not Found"}"#),
            info: json(200, INFO_TEI),
            ..Behaviour::default()
        },
        &[],
    )
    .await;
    assert_eq!(
        v,
        json!({"model_name":"BAAI/bge-small-en-v1.5","model_type":"embeddings","model_provider_name":"BAAI"})
    );
    // Configuration wins.
    let v = info_for(
        Behaviour::default(),
        &[
            "--model-type",
            "chat-completion",
            "--model-name",
            "my-model",
            "--model-provider",
            "Contoso",
        ],
    )
    .await;
    assert_eq!(
        v,
        json!({"model_name":"my-model","model_type":"chat-completion","model_provider_name":"Contoso"})
    );
}

#[tokio::test]
async fn info_model_parameter() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--model-type", "embeddings"]).await;
    let r = proxy
        .get(&format!(
            "/info?api-version={V}&model=meta-llama%2FLlama-3.1-8B-Instruct"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let (status, code, msg) = azure_error(
        proxy
            .get(&format!("/info?api-version={V}&model=gpt-4o"))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "ModelNotFound"));
    assert!(msg.contains("gpt-4o"));
}

async fn embed(proxy: &Proxy, body: Value) -> reqwest::Response {
    proxy
        .post(&format!("/embeddings?api-version={V}"), &body.to_string())
        .await
}

#[tokio::test]
async fn embeddings_in_every_encoding() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--engine", "llamacpp"]).await;

    let r = embed(&proxy, json!({"input": ["hello"], "model": "m"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        EMBEDDINGS_ANSWER,
        "float answers pass through untouched"
    );

    // The engine's vector is [0.5, -1.0, 0.25, 0.0].
    let expected = [
        ("int8", json!([64, -127, 32, 0])),
        ("uint8", json!([191, 0, 159, 128])),
        ("ubinary", json!([160])),
        ("binary", json!([32])),
        ("base64", json!("AAAAPwAAgL8AAIA+AAAAAA==")),
        ("float", json!([0.5, -1.0, 0.25, 0.0])),
    ];
    for (format, want) in expected {
        let r = embed(&proxy, json!({"input": "hello", "encoding_format": format})).await;
        assert_eq!(r.status(), 200, "{format}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["data"][0]["embedding"], want, "{format}");
        assert_eq!(v["usage"]["total_tokens"], 1);
        let sent = mock.received_on("/v1/embeddings").pop().unwrap().json();
        assert_eq!(
            sent["encoding_format"].as_str().unwrap_or("float"),
            "float",
            "the engine is asked for floats"
        );
        assert_eq!(sent["input"], "hello");
    }
}

#[tokio::test]
async fn embeddings_options_the_engine_lacks_get_422() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--engine", "llamacpp"]).await;
    for (field, value) in [("dimensions", json!(64)), ("input_type", json!("query"))] {
        let (status, code, msg) =
            azure_error(embed(&proxy, json!({"input": "x", field: value})).await).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "UnsupportedParameter"),
            "{msg}"
        );
        assert!(msg.contains(field));
    }
    assert!(mock.received_on("/v1/embeddings").is_empty());
    // vLLM takes `dimensions`.
    let proxy = Proxy::before(&mock, &["--engine", "vllm"]).await;
    assert_eq!(
        embed(&proxy, json!({"input": "x", "dimensions": 64}))
            .await
            .status(),
        200
    );
    assert_eq!(
        mock.received_on("/v1/embeddings").pop().unwrap().json()["dimensions"],
        64
    );
}

#[tokio::test]
async fn image_embeddings_where_the_engine_has_them() {
    let mock = Mock::start(Behaviour::default()).await;
    let body = json!({"input": [{"image": "data:image/png;base64,iVBORw0KGgo=", "text": "a cat"}, {"image": "data:image/png;base64,AAAA"}], "encoding_format": "int8"});

    let proxy = Proxy::before(&mock, &["--engine", "llamacpp"]).await;
    let r = proxy
        .post(
            &format!("/images/embeddings?api-version={V}"),
            &body.to_string(),
        )
        .await;
    let (status, code, msg) = azure_error(r).await;
    assert_eq!((status, code.as_str()), (400, "OperationNotSupported"));
    assert!(msg.contains("image embeddings"), "{msg}");

    let proxy = Proxy::before(&mock, &["--engine", "vllm"]).await;
    let r = proxy
        .post(
            &format!("/images/embeddings?api-version={V}"),
            &body.to_string(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"], json!([64, -127, 32, 0]));
    assert_eq!(v["usage"]["total_tokens"], 2);
    let sent = mock.received_on("/v1/embeddings");
    let first = sent[sent.len() - 2].json();
    assert_eq!(
        first["messages"][0]["content"][0]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(first["messages"][0]["content"][1]["text"], "a cat");
    assert_eq!(first["model"], "meta-llama/Llama-3.1-8B-Instruct");
}

#[tokio::test]
async fn operation_on_the_wrong_kind_of_model_is_explained() {
    // A chat engine refuses embeddings: the client hears why, in Azure's words.
    let mock = Mock::start(Behaviour {
        embeddings: refusal(),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &[]).await;
    let (status, code, msg) = azure_error(embed(&proxy, json!({"input": "x"})).await).await;
    assert_eq!((status, code.as_str()), (400, "OperationNotSupported"));
    assert!(msg.contains("embeddings operation does not work"), "{msg}");
    // A declared type refuses before the engine is asked.
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--model-type", "embeddings"]).await;
    let _ = mock.received();
    let (status, _, msg) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await,
    )
    .await;
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("chatCompletion operation"), "{msg}");
    assert!(mock.received_on("/v1/chat/completions").is_empty());
    // An engine serving both kinds for one model is never refused.
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    assert_eq!(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await
            .status(),
        200
    );
    assert_eq!(embed(&proxy, json!({"input": "x"})).await.status(), 200);
}

/// How vLLM refuses embeddings for a generative model.
fn refusal() -> Reply {
    json(
        400,
        r#"{"object":"error","message":"The model does not support Embeddings API","type":"BadRequestError","code":400}"#,
    )
}

#[tokio::test]
async fn engine_gaps_are_filled_for_llama_cpp_python() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--engine", "llama-cpp-python"]).await;
    let body = json!({
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": null},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "done", "name": null}
        ],
        "max_completion_tokens": 4,
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    });
    let r = proxy
        .post("/openai/v1/chat/completions", &body.to_string())
        .await;
    assert_eq!(r.status(), 200);
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    assert_eq!(sent["max_tokens"], 4);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "Hi"})
    );
    assert_eq!(sent["messages"][2]["content"], "");
    assert!(sent["messages"][3].get("name").is_none());
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_object", "schema": {"type": "object"}})
    );

    let image = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]});
    let (status, _, msg) = azure_error(
        proxy
            .post("/openai/v1/chat/completions", &image.to_string())
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("image_url"), "{msg}");

    // LangChain's input_type "text" is accepted and dropped; "query" has no equivalent here.
    let r = embed(&proxy, json!({"input": "x", "input_type": "text"})).await;
    assert_eq!(r.status(), 200);
    assert!(mock
        .received_on("/v1/embeddings")
        .pop()
        .unwrap()
        .json()
        .get("input_type")
        .is_none());
    assert_eq!(
        azure_error(embed(&proxy, json!({"input": "x", "input_type": "query"})).await)
            .await
            .0,
        422
    );
}

#[tokio::test]
async fn answers_missing_openai_fields_are_completed() {
    // An engine answer without id, created, object and usage (as some engines send).
    let bare = r#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
    let mock = Mock::start(Behaviour {
        chat: json(200, bare),
        ..Behaviour::default()
    })
    .await;
    let proxy = Proxy::before(&mock, &[]).await;
    let v: Value = proxy
        .post(&format!("/chat/completions?api-version={V}"), CHAT)
        .await
        .json()
        .await
        .unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    );
    assert_eq!(v["choices"][0]["message"]["content"], "Hi");
    // A complete answer keeps its very bytes.
    mock.set(|b| b.chat = json(200, CHAT_ANSWER));
    assert_eq!(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await
            .text()
            .await
            .unwrap(),
        CHAT_ANSWER
    );
}
