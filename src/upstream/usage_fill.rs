//! The usage chunk for engines that do not send one (`stream_options.include_usage`): counted
//! from the stream as it passes (one chunk with text or tool-call arguments = one token, which
//! is how these engines stream), with the prompt counted by the engine's tokenize route where it
//! has one (the messages' text, without the chat template's own tokens), asked once the
//! generation is over. The chunk goes out just
//! before `[DONE]`, as OpenAI sends it: `choices: []` and the `usage` object.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::translate::sse::DONE;

/// How to ask the engine for the prompt's token count, if it can say. The future is only
/// polled after the engine's `[DONE]`: an engine such as llama-cpp-python cuts a running
/// stream short when another request reaches it.
pub type PromptCount =
    Option<std::pin::Pin<Box<dyn std::future::Future<Output = Option<u64>> + Send>>>;

/// Counts what passes and adds the usage chunk before `[DONE]` unless the engine sent one.
#[derive(Debug, Default)]
pub struct UsageCounter {
    completion_tokens: u64,
    engine_sent_usage: bool,
    id: Value,
    model: Value,
    created: Value,
    object: Option<String>,
}

impl UsageCounter {
    /// Looks at one output chunk (whole events); returns (events before `[DONE]`, whether
    /// `[DONE]` was in it).
    pub fn observe(&mut self, chunk: &[u8]) -> (Bytes, bool) {
        let mut before = BytesMut::with_capacity(chunk.len());
        let mut done = false;
        for event in chunk
            .split_inclusive(|&b| b == b'\n')
            .collect::<Vec<_>>()
            .chunks(2)
        {
            let whole: Vec<u8> = event.concat();
            if whole == DONE {
                done = true;
                continue;
            }
            if let Some(data) = whole.strip_prefix(b"data: ") {
                self.count(data);
            }
            before.put_slice(&whole);
        }
        (before.freeze(), done)
    }

    fn count(&mut self, data: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if v.get("usage").is_some_and(|u| !u.is_null()) {
            self.engine_sent_usage = true;
        }
        if self.object.is_none() {
            self.id = v.get("id").cloned().unwrap_or(Value::Null);
            self.model = v.get("model").cloned().unwrap_or(Value::Null);
            self.created = v.get("created").cloned().unwrap_or(Value::Null);
            self.object = v.get("object").and_then(Value::as_str).map(str::to_owned);
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            return;
        };
        for c in choices {
            let text = c
                .pointer("/delta/content")
                .or_else(|| c.get("text"))
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty());
            let args = c
                .pointer("/delta/tool_calls")
                .and_then(Value::as_array)
                .is_some_and(|calls| !calls.is_empty());
            if text || args {
                self.completion_tokens += 1;
            }
        }
    }

    /// The usage event (with `[DONE]`), or just `[DONE]` when the engine sent its own usage.
    pub fn closing(&self, prompt_tokens: Option<u64>) -> Bytes {
        let mut out = BytesMut::new();
        if !self.engine_sent_usage {
            let prompt = prompt_tokens.unwrap_or(0);
            let chunk = json!({
                "id": self.id,
                "object": self.object.as_deref().unwrap_or("chat.completion.chunk"),
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": self.completion_tokens,
                    "total_tokens": prompt + self.completion_tokens,
                },
            });
            out.put_slice(b"data: ");
            out.put_slice(chunk.to_string().as_bytes());
            out.put_slice(b"\n\n");
        }
        out.put_slice(DONE);
        out.freeze()
    }
}

/// Wraps a normalised event stream so that it ends with a usage chunk.
pub fn fill<S>(
    events: S,
    prompt: PromptCount,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    futures_util::stream::unfold(
        Some((events, UsageCounter::default(), prompt)),
        |state| async move {
            let (mut events, mut counter, prompt) = state?;
            match events.next().await {
                Some(Ok(chunk)) => {
                    let (before, done) = counter.observe(&chunk);
                    if !done {
                        return Some((Ok(before), Some((events, counter, prompt))));
                    }
                    let prompt_tokens = match prompt {
                        Some(count) => count.await,
                        None => None,
                    };
                    let mut out = BytesMut::from(&before[..]);
                    out.put_slice(&counter.closing(prompt_tokens));
                    Some((Ok(out.freeze()), None))
                }
                Some(Err(e)) => Some((Err(e), None)),
                None => None,
            }
        },
    )
}

/// The text a prompt's tokens are counted from: every message's text content, or `prompt`.
pub fn prompt_text(body: &Value) -> String {
    let mut text = String::new();
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for m in messages {
            match m.get("content") {
                Some(Value::String(s)) => text.push_str(s),
                Some(Value::Array(parts)) => {
                    for p in parts {
                        if let Some(t) = p.get("text").and_then(Value::as_str) {
                            text.push_str(t);
                        }
                    }
                }
                _ => {}
            }
            text.push('\n');
        }
    } else if let Some(p) = body.get("prompt").and_then(Value::as_str) {
        text.push_str(p);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_chunks_and_adds_usage_before_done() {
        let mut c = UsageCounter::default();
        let (out, done) = c.observe(b"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n");
        assert!(!done);
        assert!(out.starts_with(b"data: {\"id\":\"x\""));
        let (out, done) = c.observe(b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"}}]}\n\ndata: [DONE]\n\n");
        assert!(done);
        assert!(!out.ends_with(DONE));
        let closing = c.closing(Some(4));
        let text = std::str::from_utf8(&closing).unwrap();
        let usage: Value = serde_json::from_str(
            text.split("\n\n")
                .next()
                .unwrap()
                .strip_prefix("data: ")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6})
        );
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["id"], "x");
        assert!(text.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn an_engine_usage_chunk_is_not_doubled() {
        let mut c = UsageCounter::default();
        let _ = c.observe(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n",
        );
        assert_eq!(&c.closing(None)[..], DONE);
    }

    #[test]
    fn prompt_text_from_messages_and_prompt() {
        let body = json!({"messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]}]});
        assert_eq!(prompt_text(&body), "a\nb\n");
        assert_eq!(prompt_text(&json!({"prompt":"p"})), "p");
    }
}
