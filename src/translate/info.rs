//! `GET /info`: the spec's ModelInfo, built from what the engine reports about its models.
//!
//! Engines describe their models differently: vLLM, SGLang, TGI and llama.cpp answer
//! `GET /v1/models` with an OpenAI list (llama.cpp omits `created`; old TGI answers one model
//! object, not a list); TEI has no `/v1/models` and describes itself at `GET /info`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The spec's ModelInfo `model_type` values the proxy can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ModelType {
    #[serde(rename = "chat-completion")]
    ChatCompletion,
    #[serde(rename = "embeddings")]
    Embeddings,
}

/// The spec's ModelInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    pub model_name: String,
    pub model_type: ModelType,
    pub model_provider_name: String,
}

/// One model as an engine lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EngineModel {
    pub id: String,
    #[serde(default)]
    pub owned_by: Option<String>,
}

/// Reads an engine's `/v1/models` answer: an OpenAI list, or a single model object.
pub fn parse_models(body: &[u8]) -> Option<Vec<EngineModel>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Models {
        List { data: Vec<EngineModel> },
        One(EngineModel),
    }
    match serde_json::from_slice::<Models>(body).ok()? {
        Models::List { data } => Some(data),
        Models::One(m) => Some(vec![m]),
    }
}

/// What TEI's (or TGI's) `GET /info` tells: the model id and, for TEI, the model's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub model_id: String,
    /// `Some(Embeddings)` for a TEI embedding model, `Some(ChatCompletion)` for a TGI text
    /// generation model, `None` for kinds the spec has no type for (TEI rerankers, classifiers).
    pub model_type: Option<ModelType>,
}

/// Reads a TEI or TGI `/info` answer.
pub fn parse_engine_info(body: &[u8]) -> Option<EngineInfo> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let model_id = v.get("model_id")?.as_str()?.to_owned();
    let model_type = match v.get("model_type") {
        Some(Value::Object(kind)) if kind.contains_key("embedding") => Some(ModelType::Embeddings),
        Some(Value::Object(_)) => None,
        _ if v.get("max_total_tokens").is_some() || v.get("model_pipeline_tag").is_some() => {
            Some(ModelType::ChatCompletion)
        }
        _ => None,
    };
    Some(EngineInfo {
        model_id,
        model_type,
    })
}

/// `owned_by` values that name a server rather than a model's provider.
const SERVER_OWNERS: &[&str] = &[
    "me",
    "system",
    "vllm",
    "sglang",
    "llamacpp",
    "llama.cpp",
    "tgi",
    "tei",
    "text-generation-inference",
    "text-embeddings-inference",
    "organization-owner",
    "owner",
    "",
];

/// The provider to report: configured, else the organisation in an `org/name` id, else a
/// meaningful `owned_by`, else the engine's name.
pub fn provider_name(configured: Option<&str>, model: &EngineModel, engine_name: &str) -> String {
    if let Some(p) = configured {
        return p.to_owned();
    }
    if let Some((org, _)) = model.id.split_once('/') {
        if !org.is_empty() && !org.starts_with('.') && !model.id.starts_with('/') {
            return org.to_owned();
        }
    }
    match model.owned_by.as_deref() {
        Some(o) if !SERVER_OWNERS.contains(&o.to_ascii_lowercase().as_str()) => o.to_owned(),
        _ => engine_name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_engines_models_shape() {
        let vllm = br#"{"object":"list","data":[{"id":"meta-llama/Llama-3.1-8B-Instruct","object":"model","created":1720000000,"owned_by":"vllm","root":"meta-llama/Llama-3.1-8B-Instruct","parent":null,"max_model_len":8192,"permission":[]}]}"#;
        let llamacpp = br#"{"object":"list","data":[{"id":"smollm2","object":"model","owned_by":"llamacpp","meta":{"n_params":135000000}}]}"#;
        let sglang = br#"{"object":"list","data":[{"id":"Qwen/Qwen2.5-7B","object":"model","created":1,"owned_by":"sglang","root":"Qwen/Qwen2.5-7B"}]}"#;
        let tgi_old =
            br#"{"id":"tgi","object":"model","created":0,"owned_by":"mistralai/Mistral-7B"}"#;
        for (body, id) in [
            (&vllm[..], "meta-llama/Llama-3.1-8B-Instruct"),
            (&llamacpp[..], "smollm2"),
            (&sglang[..], "Qwen/Qwen2.5-7B"),
            (&tgi_old[..], "tgi"),
        ] {
            let models = parse_models(body).unwrap();
            assert_eq!(models[0].id, id);
        }
        assert!(parse_models(b"{\"detail\":\"Not Found\"}").is_none());
    }

    #[test]
    fn reads_tei_and_tgi_info() {
        let tei = br#"{"model_id":"BAAI/bge-small-en-v1.5","model_sha":null,"model_dtype":"float32","model_type":{"embedding":{"pooling":"cls"}},"max_input_length":512}"#;
        let info = parse_engine_info(tei).unwrap();
        assert_eq!(info.model_type, Some(ModelType::Embeddings));
        let rerank =
            br#"{"model_id":"BAAI/bge-reranker-base","model_type":{"reranker":{"id2label":{}}}}"#;
        assert_eq!(parse_engine_info(rerank).unwrap().model_type, None);
        let tgi = br#"{"model_id":"mistralai/Mistral-7B","max_total_tokens":4096,"model_pipeline_tag":"text-generation"}"#;
        assert_eq!(
            parse_engine_info(tgi).unwrap().model_type,
            Some(ModelType::ChatCompletion)
        );
    }

    #[test]
    fn provider_names() {
        let m = |id: &str, o: Option<&str>| EngineModel {
            id: id.into(),
            owned_by: o.map(Into::into),
        };
        assert_eq!(
            provider_name(None, &m("meta-llama/Llama-3", Some("vllm")), "vLLM"),
            "meta-llama"
        );
        assert_eq!(
            provider_name(None, &m("smollm2", Some("me")), "llama.cpp"),
            "llama.cpp"
        );
        assert_eq!(
            provider_name(None, &m("x", Some("Contoso")), "vLLM"),
            "Contoso"
        );
        assert_eq!(
            provider_name(Some("Microsoft"), &m("a/b", None), "vLLM"),
            "Microsoft"
        );
        assert_eq!(
            provider_name(None, &m("/models/x.gguf", None), "llama.cpp"),
            "llama.cpp"
        );
    }
}
