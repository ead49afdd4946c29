//! Property tests over the request translation and the SSE normaliser: whatever bytes a client
//! or an engine sends, nothing panics, and the normaliser's output does not depend on how the
//! input was split. Bounded (a few hundred cases each) so CI stays quick; a crash found here is
//! kept below as a regression case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use azure_openai_proxy::translate::body::JsonBody;
use azure_openai_proxy::translate::sse::SseNormalizer;
use azure_openai_proxy::translate::{adapt, chat, embeddings};
use azure_openai_proxy::upstream::engines::Engine;
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_ \\u{e9}\\u{1F600}\"\\\\]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("tool"),
            Just("text"),
            Just("image_url"),
            Just("function")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("role".to_owned()),
                        Just("content".to_owned()),
                        Just("type".to_owned()),
                        Just("text".to_owned()),
                        Just("tool_calls".to_owned()),
                        Just("function".to_owned()),
                        Just("image_url".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn request_body() -> impl Strategy<Value = Value> {
    (json_value(), json_value(), json_value(), json_value()).prop_map(
        |(messages, input, format, extra)| {
            serde_json::json!({
                "messages": messages,
                "input": input,
                "response_format": format,
                "encoding_format": extra,
                "stop": extra,
                "tools": messages,
                "tool_choice": format,
                "max_completion_tokens": extra,
            })
        },
    )
}

const ENGINES: [Engine; 7] = [
    Engine::Vllm,
    Engine::Tgi,
    Engine::Sglang,
    Engine::Tei,
    Engine::LlamaCpp,
    Engine::LlamaCppPython,
    Engine::Generic,
];

fn translate_everything(bytes: &[u8]) {
    let Ok(body) = JsonBody::parse(bytes) else {
        return;
    };
    let _ = chat::check(&body);
    let _ = chat::check_basic(&body);
    let _ = chat::check_completions(&body);
    let _ = embeddings::check(&body);
    let _ = embeddings::check_images(&body);
    let _ = embeddings::image_requests(&body, Some("m"));
    for engine in ENGINES {
        let _ = adapt::chat(&body, engine);
    }
    let _ = body.write(&[("model", "\"m\"")]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        translate_everything(&bytes);
    }

    #[test]
    fn arbitrary_json_shapes_never_panic(body in request_body()) {
        translate_everything(body.to_string().as_bytes());
    }

    #[test]
    fn embeddings_responses_of_any_shape_never_panic(v in json_value()) {
        let wrapped = serde_json::json!({"data": [{"embedding": v.clone()}, v]}).to_string();
        for e in ["int8", "uint8", "binary", "ubinary", "base64"] {
            let body = format!(r#"{{"input":"x","encoding_format":"{e}"}}"#);
            let req = embeddings::check(&JsonBody::parse(body.as_bytes()).unwrap()).unwrap();
            let _ = embeddings::encode_response(wrapped.as_bytes(), req.encoding);
        }
    }

    #[test]
    fn sse_output_does_not_depend_on_splitting(
        events in prop::collection::vec("(data: ?[a-z{}\":, \\u{e9}]{0,20}|: ka|event: x|id: 1|data: \\[DONE\\]|retry: 5|)", 0..12),
        endings in prop::collection::vec(prop_oneof![Just("\n"), Just("\r\n"), Just("\r")], 12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut text = String::new();
        for (i, e) in events.iter().enumerate() {
            text.push_str(e);
            text.push_str(endings[i % endings.len()]);
            text.push_str(endings[(i + 1) % endings.len()]);
        }
        let bytes = text.as_bytes();
        let whole = {
            let mut n = SseNormalizer::new();
            let mut out = n.push(bytes).to_vec();
            out.extend_from_slice(&n.finish());
            out
        };
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut n = SseNormalizer::new();
        let mut split = Vec::new();
        let mut start = 0;
        for p in points {
            let chunk = n.push(&bytes[start..p]);
            prop_assert!(chunk.is_empty() || chunk.ends_with(b"\n\n"), "whole events only");
            prop_assert!(std::str::from_utf8(&chunk).is_ok());
            split.extend_from_slice(&chunk);
            start = p;
        }
        split.extend_from_slice(&n.push(&bytes[start..]));
        split.extend_from_slice(&n.finish());
        prop_assert_eq!(&split, &whole);
        let out = String::from_utf8(whole).unwrap();
        prop_assert!(out.ends_with("data: [DONE]\n\n"));
        prop_assert_eq!(out.split("\n\n").filter(|e| *e == "data: [DONE]").count(), 1);
        for line in out.split("\n\n").filter(|l| !l.is_empty()) {
            prop_assert!(line.starts_with("data: ") && !line.contains('\n') && !line.contains('\r'), "{:?}", line);
        }
    }
}
