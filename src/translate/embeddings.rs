//! Embeddings requests (text and image) and the encodings the spec offers.
//!
//! Engines mostly produce only floats. When a client asks for another `encoding_format`, the
//! proxy asks the engine for floats and encodes them itself, so every format works on every
//! engine. The rules (one vector at a time, `m` = the largest absolute value in the vector):
//! - `base64`: the float32 values, little-endian, in standard base64 (as OpenAI encodes them);
//! - `int8`: `round(x / m * 127)`, in -127..=127;
//! - `uint8`: `round((x / m + 1) * 127.5)`, in 0..=255;
//! - `ubinary`: one bit per dimension (`x > 0`), eight to a byte, the first dimension in the
//!   highest bit, the last byte padded with zeros; each byte as 0..=255;
//! - `binary`: the same bytes, each minus 128 (-128..=127), as sentence-transformers packs them.
//!
//! A zero vector encodes as zeros.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;
use crate::translate::body::JsonBody;
use crate::translate::json::{
    array, expect_kind, field, integer, missing, object, one_of, string, Kind,
};
use crate::upstream::engines::Engine;

/// Top-level fields of EmbeddingsOptions in the Model Inference spec.
pub const FIELDS: &[&str] = &[
    "input",
    "dimensions",
    "encoding_format",
    "input_type",
    "model",
];

/// Top-level fields of ImageEmbeddingsOptions (same names; `input` holds image items).
pub const IMAGE_FIELDS: &[&str] = FIELDS;

/// The spec's `encoding_format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Float,
    Base64,
    Int8,
    Uint8,
    Binary,
    Ubinary,
}

impl Encoding {
    const NAMES: &'static [&'static str] =
        &["float", "base64", "int8", "uint8", "binary", "ubinary"];

    fn parse(s: &str) -> Encoding {
        match s {
            "base64" => Encoding::Base64,
            "int8" => Encoding::Int8,
            "uint8" => Encoding::Uint8,
            "binary" => Encoding::Binary,
            "ubinary" => Encoding::Ubinary,
            _ => Encoding::Float,
        }
    }
}

/// What the proxy needs to know about a checked embeddings request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingsRequest {
    /// The encoding the client asked for.
    pub encoding: Encoding,
    /// Whether `dimensions` was given.
    pub has_dimensions: bool,
    /// Whether `input_type` was given.
    pub has_input_type: bool,
    /// Whether it was `"text"`, the default every engine can honour.
    pub input_type_is_text: bool,
}

/// Checks a text embeddings body.
pub fn check(body: &JsonBody<'_>) -> Result<EmbeddingsRequest, ApiError> {
    let input = body.get_non_null("input").ok_or_else(|| missing("input"))?;
    match Kind::of(input) {
        Kind::String => {}
        _ => {
            let items = array("input", input).map_err(|_| {
                crate::translate::json::wrong_kind(
                    "input",
                    "a string or an array of strings",
                    input,
                )
            })?;
            if items.is_empty() {
                return Err(ApiError::invalid_param(
                    "input",
                    "'input' must not be empty.",
                ));
            }
            for (i, item) in items.enumerate() {
                string(&format!("input[{i}]"), item)?;
            }
        }
    }
    common(body)
}

/// Checks an image embeddings body: `input` is a list of `{image, text?}`.
pub fn check_images(body: &JsonBody<'_>) -> Result<EmbeddingsRequest, ApiError> {
    let input = body.get_non_null("input").ok_or_else(|| missing("input"))?;
    let items = array("input", input)?;
    if items.is_empty() {
        return Err(ApiError::invalid_param(
            "input",
            "'input' must not be empty.",
        ));
    }
    for (i, item) in items.enumerate() {
        let path = format!("input[{i}]");
        let fields = object(&path, item)?;
        let image_path = format!("{path}.image");
        string(
            &image_path,
            field(&fields, "image").ok_or_else(|| missing(&image_path))?,
        )?;
        if let Some(t) = field(&fields, "text") {
            string(&format!("{path}.text"), t)?;
        }
    }
    common(body)
}

fn common(body: &JsonBody<'_>) -> Result<EmbeddingsRequest, ApiError> {
    let encoding = match body.get_non_null("encoding_format") {
        Some(raw) => Encoding::parse(&one_of("encoding_format", raw, Encoding::NAMES)?),
        None => Encoding::Float,
    };
    let dimensions = body.get_non_null("dimensions");
    if let Some(d) = dimensions {
        integer("dimensions", d, 1, 1 << 20)?;
    }
    let input_type = body.get_non_null("input_type");
    let mut input_type_is_text = false;
    if let Some(t) = input_type {
        input_type_is_text = one_of("input_type", t, &["text", "query", "document"])? == "text";
    }
    if let Some(m) = body.get_non_null("model") {
        expect_kind("model", m, &[Kind::String])?;
    }
    Ok(EmbeddingsRequest {
        encoding,
        has_dimensions: dimensions.is_some(),
        has_input_type: input_type.is_some(),
        input_type_is_text,
    })
}

/// Rewrites an engine's float embeddings response into `encoding`.
pub fn encode_response(body: &[u8], encoding: Encoding) -> Result<Bytes, ApiError> {
    let invalid = |detail: String| ApiError::UpstreamInvalidResponse { detail };
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("embeddings response is not JSON: {e}")))?;
    let data = value
        .get_mut("data")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| invalid("embeddings response has no 'data' array".into()))?;
    for item in data {
        let floats: Vec<f32> = match item.get("embedding") {
            Some(Value::Array(xs)) => xs
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| invalid("an embedding holds a non-number".into()))?,
            _ => return Err(invalid("an embedding is not an array of floats".into())),
        };
        let encoded = encode(&floats, encoding);
        if let Some(obj) = item.as_object_mut() {
            obj.insert("embedding".into(), encoded);
        }
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| invalid(format!("cannot write embeddings: {e}")))
}

/// The spec's 422 for `dimensions` / `input_type` where the engine has no such option.
pub fn check_options(request: EmbeddingsRequest, engine: Engine) -> Result<(), ApiError> {
    let caps = engine.capabilities();
    for (given, supported, param) in [
        (request.has_dimensions, caps.dimensions, "dimensions"),
        (
            request.has_input_type && !request.input_type_is_text,
            caps.input_type,
            "input_type",
        ),
    ] {
        if given && !supported {
            return Err(ApiError::UnsupportedParameter {
                message: format!(
                    "The model does not support the parameter '{param}' (engine: {engine})."
                ),
                param: param.to_owned(),
            });
        }
    }
    Ok(())
}

/// Encodes one float vector.
pub fn encode(v: &[f32], encoding: Encoding) -> Value {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        1.0 / max
    } else {
        0.0
    };
    match encoding {
        Encoding::Float => Value::from(v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>()),
        Encoding::Base64 => {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Encoding::Int8 => Value::from(
            v.iter()
                .map(|&x| ((x * scale * 127.0).round().clamp(-127.0, 127.0)) as i64)
                .collect::<Vec<i64>>(),
        ),
        Encoding::Uint8 => Value::from(
            v.iter()
                .map(|&x| (((x * scale + 1.0) * 127.5).round().clamp(0.0, 255.0)) as i64)
                .collect::<Vec<i64>>(),
        ),
        Encoding::Ubinary | Encoding::Binary => {
            let offset = if encoding == Encoding::Binary { 128 } else { 0 };
            Value::from(
                v.chunks(8)
                    .map(|chunk| {
                        let byte = chunk.iter().enumerate().fold(0u8, |b, (i, &x)| {
                            if x > 0.0 {
                                b | (0x80 >> i)
                            } else {
                                b
                            }
                        });
                        i64::from(byte) - offset
                    })
                    .collect::<Vec<i64>>(),
            )
        }
    }
}

/// One engine request per image item, in the chat-style form vLLM's embeddings route takes for
/// multimodal models: a user message with the image (and the optional text) as content parts.
pub fn image_requests(body: &JsonBody<'_>, model: Option<&str>) -> Result<Vec<Bytes>, ApiError> {
    let input = body.get_non_null("input").ok_or_else(|| missing("input"))?;
    let items = array("input", input)?;
    let dimensions = body.get_non_null("dimensions").map(|d| d.get());
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        let path = format!("input[{i}]");
        let fields = object(&path, item)?;
        let image = string(
            &format!("{path}.image"),
            field(&fields, "image").ok_or_else(|| missing(&path))?,
        )?;
        let mut content =
            vec![serde_json::json!({"type": "image_url", "image_url": {"url": image}})];
        if let Some(t) = field(&fields, "text") {
            content.push(
                serde_json::json!({"type": "text", "text": string(&format!("{path}.text"), t)?}),
            );
        }
        let mut request = serde_json::json!({
            "messages": [{"role": "user", "content": content}],
            "encoding_format": "float",
        });
        if let Some(m) = model {
            request["model"] = Value::from(m);
        }
        if let Some(d) = dimensions {
            request["dimensions"] = serde_json::from_str(d).unwrap_or(Value::Null);
        }
        out.push(Bytes::from(request.to_string()));
    }
    Ok(out)
}

/// Merges the engine's one-item answers into one embeddings answer, encoded as asked.
pub fn merge_image_answers(answers: &[Bytes], encoding: Encoding) -> Result<Bytes, ApiError> {
    let invalid = |detail: &str| ApiError::UpstreamInvalidResponse {
        detail: detail.into(),
    };
    let mut data = Vec::with_capacity(answers.len());
    let (mut prompt, mut total) = (0u64, 0u64);
    let mut model = Value::Null;
    for (i, a) in answers.iter().enumerate() {
        let v: Value =
            serde_json::from_slice(a).map_err(|_| invalid("embeddings answer is not JSON"))?;
        let embedding = v
            .pointer("/data/0/embedding")
            .cloned()
            .ok_or_else(|| invalid("embeddings answer has no data[0].embedding"))?;
        data.push(serde_json::json!({"object": "embedding", "index": i, "embedding": embedding}));
        prompt += v
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        total += v
            .pointer("/usage/total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if model.is_null() {
            model = v.get("model").cloned().unwrap_or(Value::Null);
        }
    }
    let merged = serde_json::json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": total},
    });
    let bytes = serde_json::to_vec(&merged).map_err(|_| invalid("cannot write embeddings"))?;
    match encoding {
        Encoding::Float => Ok(Bytes::from(bytes)),
        other => encode_response(&bytes, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(src: &str) -> Result<EmbeddingsRequest, String> {
        let body = JsonBody::parse(src.as_bytes()).map_err(|e| e.to_string())?;
        check(&body).map_err(|e| e.to_string())
    }

    #[test]
    fn checks_inputs_and_options() {
        assert_eq!(req(r#"{"input":"a"}"#).unwrap().encoding, Encoding::Float);
        let r = req(
            r#"{"input":["a","b"],"encoding_format":"int8","dimensions":64,"input_type":"query"}"#,
        )
        .unwrap();
        assert_eq!(r.encoding, Encoding::Int8);
        assert!(r.has_dimensions && r.has_input_type);
        for (bad, needle) in [
            (r#"{}"#, "'input'"),
            (r#"{"input":[]}"#, "'input'"),
            (r#"{"input":[1]}"#, "input[0]"),
            (
                r#"{"input":"a","encoding_format":"fp16"}"#,
                "encoding_format",
            ),
            (r#"{"input":"a","dimensions":0}"#, "dimensions"),
            (r#"{"input":"a","input_type":"code"}"#, "input_type"),
        ] {
            let err = req(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
        let body =
            JsonBody::parse(br#"{"input":[{"image":"data:image/png;base64,AA","text":"cat"}]}"#)
                .unwrap();
        assert!(check_images(&body).is_ok());
        let body = JsonBody::parse(br#"{"input":[{"text":"cat"}]}"#).unwrap();
        assert!(check_images(&body)
            .unwrap_err()
            .to_string()
            .contains("input[0].image"));
    }

    #[test]
    fn encodings_follow_the_documented_rules() {
        let v = [0.5f32, -1.0, 0.0, 0.25, 1.0, -0.5, 0.1, -0.1, 0.9];
        assert_eq!(
            encode(&v, Encoding::Int8),
            serde_json::json!([64, -127, 0, 32, 127, -64, 13, -13, 114])
        );
        assert_eq!(
            encode(&v, Encoding::Uint8),
            serde_json::json!([191, 0, 128, 159, 255, 64, 140, 115, 242])
        );
        // bits: 1 0 0 1 1 0 1 0 | 1  -> 0b1001_1010 = 154, 0b1000_0000 = 128
        assert_eq!(encode(&v, Encoding::Ubinary), serde_json::json!([154, 128]));
        assert_eq!(encode(&v, Encoding::Binary), serde_json::json!([26, 0]));
        let b64 = encode(&[1.0, -2.0], Encoding::Base64);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()
        );
        assert_eq!(
            encode(&[0.0, 0.0], Encoding::Int8),
            serde_json::json!([0, 0])
        );
    }

    #[test]
    fn response_rewrite_keeps_other_fields() {
        let src = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0,-1.0]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}"#;
        let out = encode_response(src, Encoding::Int8).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["data"][0]["embedding"], serde_json::json!([127, -127]));
        assert_eq!(v["usage"]["total_tokens"], 1);
        assert!(encode_response(b"{}", Encoding::Int8).is_err());
    }
}
