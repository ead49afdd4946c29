//! Schema mapping between Azure's API and the engine's OpenAI-compatible one: pure functions,
//! unit-tested without HTTP.

pub mod adapt;
pub mod api_version;
pub mod body;
pub mod chat;
pub mod embeddings;
pub mod extra_params;
pub mod info;
pub mod json;
pub mod prepare;
pub mod raw;
pub mod responses;
pub mod sse;
