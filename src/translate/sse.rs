//! Server-sent events from an engine, normalised into the form every Azure client parses.
//!
//! The azure-ai-inference SDK accepts only `data: <payload>` lines separated by `\n`: a comment
//! (TGI's keep-alives), an `event:` or `id:` line, `data:` without the space, or CRLF endings make
//! it raise. This is a pure state machine: bytes in, whole normalised events out. Complete events
//! leave as soon as their closing blank line arrives; only an unfinished line is held, so no chunk
//! is held back and every output chunk is whole lines of whole UTF-8 characters.

use bytes::{BufMut, Bytes, BytesMut};

/// The final event of every stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Normalises one SSE stream.
#[derive(Debug, Default)]
pub struct SseNormalizer {
    /// An unfinished line (no line ending seen yet).
    line: Vec<u8>,
    /// The data of the event being read (lines joined with a space: JSON treats it as
    /// whitespace, and a newline would split the event for clients).
    data: Vec<u8>,
    /// Whether the current event has any `data` field.
    has_data: bool,
    /// The previous byte was `\r`, so a following `\n` belongs to the same line ending.
    after_cr: bool,
    /// `[DONE]` has been sent; everything after it is dropped.
    done: bool,
}

impl SseNormalizer {
    /// A normaliser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream's `[DONE]` has been sent.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Like `push`, for a chunk as it came from the connection: a chunk of whole events already
    /// in the normal form (what most engines send) is passed on as it is, without a copy.
    pub fn push_bytes(&mut self, chunk: &Bytes) -> Bytes {
        if self.line.is_empty() && !self.has_data && !self.after_cr && !self.done {
            if let Some((len, done)) = normal_events(chunk) {
                self.done = done;
                return chunk.slice(..len);
            }
        }
        self.push(chunk)
    }

    /// Feeds bytes from the engine; returns what can be sent to the client now (maybe empty).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        let mut rest = chunk;
        while !rest.is_empty() && !self.done {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.line.extend_from_slice(&rest[..end]);
                    self.after_cr = rest[end] == b'\r';
                    rest = &rest[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.end_line(&line, &mut out);
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        out.freeze()
    }

    /// The engine's stream ended: flush a last unterminated event and close with `[DONE]`.
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if !self.done {
            if !self.line.is_empty() {
                let line = std::mem::take(&mut self.line);
                self.end_line(&line, &mut out);
            }
            self.dispatch(&mut out);
            if !self.done {
                out.put_slice(DONE);
                self.done = true;
            }
        }
        out.freeze()
    }

    /// A terminal error event (in the `{"error": ...}` shape clients read) followed by `[DONE]`.
    pub fn error_event(&mut self, error_json: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(error_json.len() + 24);
        if !self.done {
            out.put_slice(b"data: ");
            out.put_slice(error_json);
            out.put_slice(b"\n\n");
            out.put_slice(DONE);
            self.done = true;
        }
        out.freeze()
    }

    fn end_line(&mut self, line: &[u8], out: &mut BytesMut) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // a comment, e.g. a keep-alive
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if name == b"data" {
            if self.has_data {
                self.data.push(b' ');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // `event`, `id`, `retry` and unknown fields carry nothing the clients use.
    }

    fn dispatch(&mut self, out: &mut BytesMut) {
        if !self.has_data {
            return;
        }
        self.has_data = false;
        let data = self.data.trim_ascii();
        if data == b"[DONE]" {
            out.put_slice(DONE);
            self.done = true;
        } else if !data.is_empty() {
            out.reserve(data.len() + 8);
            out.put_slice(b"data: ");
            out.put_slice(data);
            out.put_slice(b"\n\n");
        }
        self.data.clear();
    }
}

/// When `chunk` is whole events in the normal form (`data: <payload>\n\n`, the payload on one
/// line without surrounding whitespace), as the normaliser would write them: how many bytes
/// of it to send (up to and including a `[DONE]`, after which nothing is sent) and whether
/// `[DONE]` was among them. `None`: the chunk needs the normaliser.
fn normal_events(chunk: &[u8]) -> Option<(usize, bool)> {
    if chunk.is_empty() {
        return None;
    }
    let mut at = 0;
    while at < chunk.len() {
        let event = chunk[at..].strip_prefix(b"data: ")?;
        // One search for the end of the line and for a CR in it: a CR first means the line
        // needs the normaliser.
        let end = memchr::memchr2(b'\n', b'\r', event)?;
        if event[end] == b'\r' {
            return None;
        }
        let payload = &event[..end];
        let (first, last) = (payload.first()?, payload.last()?);
        if first.is_ascii_whitespace()
            || last.is_ascii_whitespace()
            || event.get(end + 1) != Some(&b'\n')
        {
            return None;
        }
        at += b"data: ".len() + end + 2;
        if payload == b"[DONE]" {
            return Some((at, true));
        }
    }
    Some((at, false))
}

/// An engine's complete (non-streamed) answer as the event stream the client asked for, for
/// engines that ignore `stream`: one chunk carrying each choice's whole message as its delta,
/// a usage chunk when the answer has usage, and `[DONE]`. `None` when the answer is not a
/// chat or text completion.
pub fn completion_as_events(answer: &serde_json::Value) -> Option<Bytes> {
    use serde_json::{json, Map, Value};
    let object = answer
        .get("object")
        .and_then(Value::as_str)
        .unwrap_or("chat.completion");
    let choices = answer.get("choices")?.as_array()?;
    let chat = object.starts_with("chat.completion");
    let streamed: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut choice = Map::new();
            choice.insert(
                "index".into(),
                c.get("index").cloned().unwrap_or(Value::from(i)),
            );
            if chat {
                let mut delta = c
                    .get("message")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                    for (n, call) in calls.iter_mut().enumerate() {
                        if let Some(call) = call.as_object_mut() {
                            call.entry("index").or_insert(Value::from(n));
                        }
                    }
                }
                choice.insert("delta".into(), Value::Object(delta));
            } else {
                choice.insert(
                    "text".into(),
                    c.get("text").cloned().unwrap_or(Value::from("")),
                );
            }
            choice.insert(
                "finish_reason".into(),
                c.get("finish_reason").cloned().unwrap_or(Value::Null),
            );
            Value::Object(choice)
        })
        .collect();
    let chunk_object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let head = |choices: Value| {
        json!({
            "id": answer.get("id").cloned().unwrap_or(Value::from("")),
            "object": chunk_object,
            "created": answer.get("created").cloned().unwrap_or(Value::from(0)),
            "model": answer.get("model").cloned().unwrap_or(Value::from("")),
            "choices": choices,
        })
    };
    let mut out = BytesMut::new();
    let mut event = |v: &Value| {
        out.put_slice(b"data: ");
        out.put_slice(v.to_string().as_bytes());
        out.put_slice(b"\n\n");
    };
    event(&head(Value::Array(streamed)));
    if let Some(usage) = answer.get("usage").filter(|u| !u.is_null()) {
        let mut last = head(Value::Array(Vec::new()));
        last["usage"] = usage.clone();
        event(&last);
    }
    out.put_slice(DONE);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<Bytes>, Bytes) {
        let mut n = SseNormalizer::new();
        let outs = chunks
            .iter()
            .map(|c| n.push_bytes(&Bytes::copy_from_slice(c)))
            .collect();
        (outs, n.finish())
    }

    proptest::proptest! {
        /// The pass-through of normal chunks sends exactly what the normaliser would, chunk by
        /// chunk, however the stream is cut.
        #[test]
        fn pass_through_is_the_normalisers_output(
            events in proptest::collection::vec(proptest::sample::select(&[
                "data: {\"a\":1}\n\n", "data: [DONE]\n\n", "data:{\"b\":2}\n\n",
                "data:  x \n\n", ": ping\n\n", "data: a\r\n\r\n", "data: a\ndata: b\n\n",
                "event: e\ndata: {}\n\n", "data: \n\n", "data: é\n\n", "\n", "data: q\n",
            ][..]), 0..8),
            cuts in proptest::collection::vec(0usize..200, 0..4),
        ) {
            let text: Vec<u8> = events.concat().into_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain(std::iter::once(text.len())) {
                pieces.push(&text[last..c]);
                last = c;
            }
            let (fast, fast_end) = run(&pieces);
            let mut slow_n = SseNormalizer::new();
            let slow: Vec<Bytes> = pieces.iter().map(|p| slow_n.push(p)).collect();
            proptest::prop_assert_eq!(fast, slow);
            proptest::prop_assert_eq!(fast_end, slow_n.finish());
        }
    }

    #[test]
    fn normal_chunks_pass_without_a_copy() {
        let chunk = Bytes::from_static(b"data: {\"a\":1}\n\ndata: [DONE]\n\ndata: {}\n\n");
        let mut n = SseNormalizer::new();
        let out = n.push_bytes(&chunk);
        assert_eq!(&out[..], b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert!(n.is_done());
    }

    fn joined(chunks: &[&[u8]]) -> String {
        let (outs, fin) = run(chunks);
        let mut s: Vec<u8> = outs.iter().flat_map(|b| b.to_vec()).collect();
        s.extend_from_slice(&fin);
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn standard_stream_passes_unchanged_and_event_by_event() {
        let (outs, fin) = run(&[
            b"data: {\"a\":1}\n\n",
            b"data: {\"a\":2}\n\n",
            b"data: [DONE]\n\n",
        ]);
        assert_eq!(&outs[0][..], b"data: {\"a\":1}\n\n");
        assert_eq!(&outs[1][..], b"data: {\"a\":2}\n\n");
        assert_eq!(&outs[2][..], DONE);
        assert!(fin.is_empty());
    }

    #[test]
    fn normalises_what_engines_send() {
        // TGI: no space after "data:", keep-alive comments; CRLF endings; event lines.
        let s = joined(&[
            b": keep-alive\n\n",
            b"data:{\"a\":1}\r\n\r\n",
            b"event: message\nid: 7\ndata: {\"a\":2}\n\n",
            b"retry: 100\n\n:\n\n",
            b"data: {\"a\":3}\r\r",
        ]);
        assert_eq!(
            s,
            "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: {\"a\":3}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn split_anywhere_gives_the_same_output_in_whole_events() {
        let src =
            "data: {\"t\":\"héllo\"}\r\n\r\n: ping\n\ndata: {\"t\":\"wörld\"}\n\ndata: [DONE]\n\n";
        let bytes = src.as_bytes();
        for cut in 0..bytes.len() {
            let (outs, fin) = run(&[&bytes[..cut], &bytes[cut..]]);
            for o in outs.iter().chain(std::iter::once(&fin)) {
                assert!(std::str::from_utf8(o).is_ok());
                assert!(o.is_empty() || o.ends_with(b"\n\n"));
            }
            let all: Vec<u8> = outs
                .iter()
                .flat_map(|b| b.to_vec())
                .chain(fin.to_vec())
                .collect();
            assert_eq!(
                String::from_utf8(all).unwrap(),
                "data: {\"t\":\"héllo\"}\n\ndata: {\"t\":\"wörld\"}\n\ndata: [DONE]\n\n",
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn done_is_added_once_and_nothing_follows_it() {
        assert_eq!(joined(&[b"data: {}\n\n"]), "data: {}\n\ndata: [DONE]\n\n");
        assert_eq!(
            joined(&[b"data: [DONE]\n\ndata: {}\n\n"]),
            "data: [DONE]\n\n"
        );
        assert_eq!(
            joined(&[b"data: {\"x\":1}"]),
            "data: {\"x\":1}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(joined(&[]), "data: [DONE]\n\n");
        assert_eq!(
            joined(&[b"data: {\"a\":\ndata: 1}\n\n"]),
            "data: {\"a\": 1}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn a_complete_answer_becomes_a_stream() {
        let answer = serde_json::json!({"id":"c","object":"chat.completion","created":5,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}});
        let out = completion_as_events(&answer).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3);
        let first: serde_json::Value = serde_json::from_str(&events[0][6..]).unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(first["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        let usage: serde_json::Value = serde_json::from_str(&events[1][6..]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 2);
        assert_eq!(events[2], "data: [DONE]");
        assert!(completion_as_events(&serde_json::json!({"data": []})).is_none());
    }

    #[test]
    fn error_event_ends_the_stream() {
        let mut n = SseNormalizer::new();
        let _ = n.push(b"data: {}\n\n");
        let e = n.error_event(b"{\"error\":{\"code\":\"x\"}}");
        assert_eq!(
            &e[..],
            b"data: {\"error\":{\"code\":\"x\"}}\n\ndata: [DONE]\n\n"
        );
        assert!(n.finish().is_empty());
    }
}
