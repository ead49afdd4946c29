//! The Azure AI Model Inference routes on real sockets, in front of a mock engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[tokio::test]
async fn chat_on_every_prefix_reaches_the_engine_unchanged() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let body = r#"{"model":"m", "messages":[{"role":"user","content":"Hi"}],  "max_tokens":5}"#;
    for prefix in ["", "/models", "/api/models"] {
        let r = proxy
            .post(&format!("{prefix}/chat/completions?api-version={V}"), body)
            .await;
        assert_eq!(r.status(), 200, "{prefix}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hello there");
    }
    let got = mock.received_on("/v1/chat/completions");
    assert_eq!(got.len(), 3);
    for r in got {
        assert_eq!(r.body, body.as_bytes(), "forwarded byte for byte");
        assert_eq!(r.method, "POST");
    }
}

#[tokio::test]
async fn model_is_filled_in_when_the_client_omits_it() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let r = proxy
        .post(
            &format!("/chat/completions?api-version={V}"),
            r#"{"messages":[{"role":"user","content":"Hi"}],"temperature":0.5,"model":null}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    let sent = mock.received_on("/v1/chat/completions").pop().unwrap();
    assert_eq!(
        std::str::from_utf8(&sent.body).unwrap(),
        r#"{"messages":[{"role":"user","content":"Hi"}],"temperature":0.5,"model":"meta-llama/Llama-3.1-8B-Instruct"}"#
    );
}

#[tokio::test]
async fn api_version_missing_unsupported_and_extended() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--api-versions", "2026-01-01-preview"]).await;
    for prefix in ["/models", "/api/models"] {
        for route in ["/chat/completions", "/embeddings", "/images/embeddings"] {
            let route = format!("{prefix}{route}");
            let (status, code, msg) = azure_error(proxy.post(&route, CHAT).await).await;
            assert_eq!(
                (status, code.as_str()),
                (400, "MissingApiVersionParameter"),
                "{route}: {msg}"
            );
        }
        let (status, code, _) = azure_error(proxy.get(&format!("{prefix}/info")).await).await;
        assert_eq!((status, code.as_str()), (400, "MissingApiVersionParameter"));
    }
    for prefix in ["", "/models", "/api/models"] {
        for route in ["/chat/completions", "/embeddings", "/images/embeddings"] {
            let route = format!("{prefix}{route}?api-version=2023-01-01");
            let (status, code, msg) = azure_error(proxy.post(&route, CHAT).await).await;
            assert_eq!((status, code.as_str()), (400, "UnsupportedApiVersion"));
            assert!(
                msg.contains("2023-01-01") && msg.contains("2024-05-01-preview"),
                "{msg}"
            );
        }
    }
    for v in [
        "2024-04-01-preview",
        "2024-05-01-preview",
        "2025-04-01",
        "2025-05-01",
        "2025-05-15-preview",
        "2026-01-01-preview",
    ] {
        let r = proxy
            .post(&format!("/models/chat/completions?api-version={v}"), CHAT)
            .await;
        assert_eq!(r.status(), 200, "{v}");
    }
    assert_eq!(
        mock.received_on("/v1/chat/completions").len(),
        6,
        "refused requests never reach the engine"
    );
}

#[tokio::test]
async fn root_routes_act_as_a_serverless_endpoint() {
    let mock = Mock::start(Behaviour::default()).await;
    // Without api-version the root routes use the default version (LiteLLM's embeddings send none).
    let proxy = Proxy::before(&mock, &[]).await;
    assert_eq!(proxy.post("/chat/completions", CHAT).await.status(), 200);
    assert_eq!(
        proxy.post("/embeddings", r#"{"input":"x"}"#).await.status(),
        200
    );
    assert_eq!(proxy.get("/info").await.status(), 200);
    // --require-api-version makes them strict.
    let proxy = Proxy::before(&mock, &["--require-api-version"]).await;
    let (status, code, _) = azure_error(proxy.post("/chat/completions", CHAT).await).await;
    assert_eq!((status, code.as_str()), (400, "MissingApiVersionParameter"));
}

#[tokio::test]
async fn extra_parameters_modes() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let body = r#"{"messages":[{"role":"user","content":"Hi"}],"top_k":3,"guided_json":{}}"#;
    let url = proxy.url(&format!("/chat/completions?api-version={V}"));
    let send = |mode: Option<&'static str>| {
        let mut rb = proxy
            .client
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body);
        if let Some(m) = mode {
            rb = rb.header("extra-parameters", m);
        }
        rb.send()
    };

    for mode in [None, Some("error")] {
        let (status, _, msg) = azure_error(send(mode).await.unwrap()).await;
        assert_eq!(status, 400);
        assert!(
            msg.contains("top_k") && msg.contains("guided_json"),
            "{msg}"
        );
    }
    assert!(mock.received_on("/v1/chat/completions").is_empty());

    assert_eq!(send(Some("drop")).await.unwrap().status(), 200);
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    assert!(sent.get("top_k").is_none() && sent.get("guided_json").is_none());
    assert_eq!(sent["messages"][0]["content"], "Hi");

    assert_eq!(send(Some("pass-through")).await.unwrap().status(), 200);
    let sent = mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json();
    assert_eq!(sent["top_k"], 3);
    assert!(sent.get("guided_json").is_some());

    let (status, code, msg) = azure_error(send(Some("allow")).await.unwrap()).await;
    assert_eq!(status, 400, "{code}");
    assert!(
        msg.contains("pass-through") && msg.contains("drop") && msg.contains("error"),
        "{msg}"
    );
}

#[tokio::test]
async fn extra_parameters_default_is_configurable() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--extra-parameters-default", "drop"]).await;
    let r = proxy
        .post(
            &format!("/chat/completions?api-version={V}"),
            r#"{"messages":[{"role":"user","content":"Hi"}],"top_k":3}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(mock
        .received_on("/v1/chat/completions")
        .pop()
        .unwrap()
        .json()
        .get("top_k")
        .is_none());
}

#[tokio::test]
async fn every_content_shape_is_accepted_and_forwarded() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let bodies = [
        r#"{"model":"m","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}],"modalities":["text"]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"Sunny"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}}}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"JSON please"}],"response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"},"strict":true}},"stop":["\n\n","END"],"seed":7,"tool_choice":"none"}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"},"stop":"END","frequency_penalty":0.1,"presence_penalty":0.2,"temperature":0.3,"top_p":0.9,"max_tokens":12,"stream":false}"#,
    ];
    for body in bodies {
        // `modalities` and audio parts arrived in 2025-04-01.
        let r = proxy
            .post("/chat/completions?api-version=2025-04-01", body)
            .await;
        assert_eq!(r.status(), 200, "{body}");
        assert_eq!(
            mock.received_on("/v1/chat/completions").pop().unwrap().body,
            body.as_bytes()
        );
    }
    // The known fields follow the api-version: `modalities` is unknown to 2024-05-01-preview,
    // `model` to the 2024-04-01-preview draft.
    let (status, _, msg) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), bodies[1])
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("['modalities']"), "{msg}");
    let (_, _, msg) = azure_error(
        proxy
            .post(
                "/chat/completions?api-version=2024-04-01-preview",
                bodies[0],
            )
            .await,
    )
    .await;
    assert!(msg.contains("['model']"), "{msg}");
}

#[tokio::test]
async fn bad_bodies_get_clear_azure_errors_and_never_reach_the_engine() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let cases = [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        ("[1,2]", "JSON object"),
        (r#"{"model":"m"}"#, "messages"),
        (r#"{"messages":"hi"}"#, "messages"),
        (
            r#"{"messages":[{"role":"user","content":{"a":1}}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":"warm"}"#,
            "temperature",
        ),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            "max_tokens",
        ),
    ];
    for (body, needle) in cases {
        let (status, _, msg) = azure_error(
            proxy
                .post(&format!("/chat/completions?api-version={V}"), body)
                .await,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let r = proxy
        .client
        .post(proxy.url(&format!("/chat/completions?api-version={V}")))
        .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(azure_error(r).await.0, 400);
    assert!(mock.received_on("/v1/chat/completions").is_empty());
}

#[tokio::test]
async fn unknown_route_wrong_method_and_large_body() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--max-body-size", "2048"]).await;
    let (status, code, _) =
        azure_error(proxy.get("/nope?api-version=2024-05-01-preview").await).await;
    assert_eq!((status, code.as_str()), (404, "404"));
    let (status, _, msg) = azure_error(
        proxy
            .get(&format!("/chat/completions?api-version={V}"))
            .await,
    )
    .await;
    assert_eq!(status, 405);
    assert!(msg.contains("GET"), "{msg}");
    let big = format!(
        r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(4096)
    );
    let (status, _, msg) = azure_error(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), &big)
            .await,
    )
    .await;
    assert_eq!(status, 413);
    assert!(msg.contains("2048"), "{msg}");
    // Without a Content-Length (chunked), the limit still holds.
    let stream =
        futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.clone().into_bytes())]);
    let r = proxy
        .client
        .post(proxy.url(&format!("/chat/completions?api-version={V}")))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(azure_error(r).await.0, 413);
}

#[tokio::test]
async fn auth_on_both_headers_and_open_probes() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--api-key", "k-one", "--api-key", "k-two"]).await;
    let url = proxy.url(&format!("/chat/completions?api-version={V}"));
    let ok = proxy
        .client
        .post(&url)
        .header("api-key", "k-two")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok = proxy
        .client
        .post(&url)
        .bearer_auth("k-one")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let engine_calls = mock.received_on("/v1/chat/completions");
    assert_eq!(engine_calls.len(), 2);
    for r in &engine_calls {
        assert!(
            r.headers.get("api-key").is_none() && r.headers.get("authorization").is_none(),
            "client keys are not forwarded"
        );
    }

    for (name, value) in [
        ("api-key", "wrong"),
        ("authorization", "Bearer wrong"),
        ("authorization", "k-one"),
        ("x-other", "k-one"),
    ] {
        let r = proxy
            .client
            .post(&url)
            .header(name, value)
            .body(CHAT)
            .send()
            .await
            .unwrap();
        let (status, code, _) = azure_error(r).await;
        assert_eq!((status, code.as_str()), (401, "401"), "{name}: {value}");
    }
    let (status, _, _) = azure_error(proxy.get(&format!("/info?api-version={V}")).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        mock.received_on("/v1/chat/completions").len(),
        2,
        "refused requests never reach the engine"
    );
    assert_eq!(proxy.get("/health").await.status(), 200);
    assert_eq!(proxy.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn upstream_key_is_sent_to_the_engine() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &["--upstream-api-key", "engine-secret"]).await;
    assert_eq!(
        proxy
            .post(&format!("/chat/completions?api-version={V}"), CHAT)
            .await
            .status(),
        200
    );
    let sent = mock.received_on("/v1/chat/completions").pop().unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer engine-secret");
}

#[tokio::test]
async fn request_ids_and_trace_context() {
    let mock = Mock::start(Behaviour::default()).await;
    let proxy = Proxy::before(&mock, &[]).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = proxy
        .client
        .post(proxy.url(&format!("/chat/completions?api-version={V}")))
        .header("x-ms-client-request-id", "client-123")
        .header("traceparent", tp)
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(r.headers()["apim-request-id"], id.as_str());
    assert_eq!(r.headers()["x-ms-client-request-id"], "client-123");
    let sent = mock.received_on("/v1/chat/completions").pop().unwrap();
    assert_eq!(sent.headers["x-request-id"], id.as_str());
    assert_eq!(sent.headers["traceparent"], tp);
    assert!(sent.headers.get("x-ms-client-request-id").is_none());
    // Errors carry ids too, and ids differ per request.
    let r = proxy.post("/models/chat/completions", CHAT).await;
    let other = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(other, id);
}
