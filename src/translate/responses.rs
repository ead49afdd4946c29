//! The OpenAI Responses API served by an engine that only has chat completions: a request
//! becomes one chat-completions request, and the engine's answer (whole or streamed) becomes a
//! Responses object or the Responses stream events.
//!
//! Everything here is pure: bytes and JSON in, bytes and JSON out. The caller owns the HTTP
//! exchange with the engine and the [`crate::responses_store::ResponsesStore`] that makes
//! `previous_response_id` work.
//!
//! Ids are the caller's: it passes the response id (`resp_...`), and every item id is derived
//! from it (`msg_<suffix>`, `rs_<suffix>`, `fc_<suffix>`, ...), so one answer always gets the same
//! ids whether it was streamed or not.

mod output;
mod request;
mod stream;

pub use output::{assistant_from_response, assistant_message, from_chat};
pub use request::{previous_response_id, to_chat};
pub use stream::ResponsesStream;

use serde_json::Value;

/// One Responses request planned as a chat-completions request.
#[derive(Debug, Clone)]
pub struct ChatPlan {
    /// The chat-completions body to send to the engine.
    pub chat_body: bytes::Bytes,
    /// Whether the client asked for a stream (the chat body then asks for one too, with usage).
    pub stream: bool,
    /// What the Responses object echoes back: `model`, `instructions`, `tools`, `tool_choice`,
    /// `temperature`, `top_p`, `max_output_tokens`, `text`, `parallel_tool_calls`, `metadata`,
    /// `user`, `store`, `previous_response_id`, `reasoning` (absent ones get the API's
    /// defaults when the object is built).
    pub settings: Value,
    /// The conversation so far in chat format: the stored history of `previous_response_id`
    /// followed by this request's input. It leaves out the `instructions` system message,
    /// because the Responses API does not carry instructions over to a follow-up response.
    pub messages: Vec<Value>,
}

impl ChatPlan {
    /// Whether the response is to be stored (`store` is true unless the client sent `false`).
    /// A caller that cannot store should set `settings["store"]` to `false` before building
    /// the response, so the echo does not promise what will not happen.
    pub fn wants_store(&self) -> bool {
        self.settings.get("store").and_then(Value::as_bool) != Some(false)
    }

    /// The conversation to store under the new response's id: [`ChatPlan::messages`] followed
    /// by the assistant's answer (best from [`assistant_from_response`], which keeps the call
    /// ids the client saw; or from [`assistant_message`]).
    pub fn conversation_with(&self, assistant: Option<Value>) -> Vec<Value> {
        let mut messages = self.messages.clone();
        messages.extend(assistant);
        messages
    }
}

/// A fresh response id, `resp_` followed by 32 hex digits.
pub fn new_response_id() -> String {
    format!("resp_{}", uuid::Uuid::new_v4().simple())
}

/// The part of a response id that item ids are made from.
fn suffix(id: &str) -> &str {
    id.strip_prefix("resp_").unwrap_or(id)
}

/// The id of the `n`-th item of one kind (`prefix` is `msg`, `rs`, `fc` or `call`). The first
/// item of a kind has no index, so the usual answer (one message) reads `msg_<suffix>`.
fn item_id(prefix: &str, id: &str, n: usize) -> String {
    let suffix = suffix(id);
    if n == 0 {
        format!("{prefix}_{suffix}")
    } else {
        format!("{prefix}_{suffix}_{n}")
    }
}

#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod stream_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_derive_from_the_response_id() {
        assert_eq!(item_id("msg", "resp_abc", 0), "msg_abc");
        assert_eq!(item_id("fc", "resp_abc", 2), "fc_abc_2");
        assert_eq!(item_id("rs", "xyz", 0), "rs_xyz");
        let id = new_response_id();
        assert!(id.starts_with("resp_") && id.len() == 37);
    }
}
