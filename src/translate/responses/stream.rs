//! A chat-completions stream replayed as the Responses API's stream events.
//!
//! The Responses stream is item-structured where the chat stream is flat: each piece of output
//! (reasoning, text, a tool call) is announced (`response.output_item.added`), grows by deltas,
//! and is closed (`...done`, then `response.output_item.done`) before the response itself
//! completes. The openai SDK checks that structure: an item must be added before its deltas, a
//! function call's `call_id` must not change between added and done, and every added item must be
//! done before `response.completed`. So a tool call is announced only once its name is known
//! (its early argument pieces are held until then), and every open item is closed at the end.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};

use super::output::{call_id_or, outcome, output_text, reasoning_of, response_object, Item, Parts};
use super::{item_id, ChatPlan};

/// One announced output item.
#[derive(Debug)]
struct Slot {
    item: Item,
    /// Still growing: its done events have not been sent.
    open: bool,
    /// Its status once closed.
    status: &'static str,
    /// For a tool call, its `index` in the chat stream.
    chat_index: Option<u64>,
}

/// A tool call seen in the chat stream whose name has not arrived yet.
#[derive(Debug)]
struct Pending {
    chat_index: u64,
    call_id: Option<String>,
    name: String,
    arguments: String,
}

/// Turns one chat-completions stream into Responses stream events, as SSE
/// (`event: <type>\ndata: <json>\n\n`), each event with its `type` and a `sequence_number`
/// counting from 0. Call [`start`](Self::start), then [`push`](Self::push) for each parsed
/// `chat.completion.chunk`, then [`finish`](Self::finish) when the engine's stream ends (or
/// [`fail`](Self::fail) if it broke). Once finished or failed, every call returns nothing.
#[derive(Debug)]
pub struct ResponsesStream {
    id: String,
    created_at: u64,
    settings: Value,
    sequence: u64,
    started: bool,
    items: Vec<Slot>,
    pending: Vec<Pending>,
    /// How many items of each kind were announced, for their ids.
    reasonings: usize,
    messages: usize,
    calls: usize,
    usage: Option<Value>,
    finish_reason: Option<String>,
    /// The final response once `finish` or `fail` has run.
    ended: Option<Value>,
}

impl ResponsesStream {
    /// A stream for the request planned as `plan`, answered as response `id`, created at
    /// `created_at` (Unix seconds).
    pub fn new(plan: &ChatPlan, id: &str, created_at: u64) -> Self {
        ResponsesStream {
            id: id.to_owned(),
            created_at,
            settings: plan.settings.clone(),
            sequence: 0,
            started: false,
            items: Vec::new(),
            pending: Vec::new(),
            reasonings: 0,
            messages: 0,
            calls: 0,
            usage: None,
            finish_reason: None,
            ended: None,
        }
    }

    /// `response.created` and `response.in_progress`. `push`, `finish` and `fail` send them
    /// first if this was not called.
    pub fn start(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        self.start_into(&mut out);
        out.freeze()
    }

    /// One parsed chat-completions chunk in; the events it causes out (maybe none). An
    /// `{"error": {"message"}}` chunk is answered as [`fail`](Self::fail) with `server_error`.
    pub fn push(&mut self, chunk: &Value) -> Bytes {
        let mut out = BytesMut::new();
        if self.ended.is_some() {
            return out.freeze();
        }
        // An engine's mid-stream error event (`{"error": {...}}`, also what the SSE normaliser
        // makes of a broken stream) ends the response as failed.
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            let message = error["message"]
                .as_str()
                .unwrap_or("The model backend failed.");
            return self.fail("server_error", message);
        }
        self.start_into(&mut out);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let choices = chunk["choices"].as_array().map(Vec::as_slice);
        // The Responses API has one answer; other choices (n > 1) have nowhere to go.
        let Some(choice) = choices
            .unwrap_or_default()
            .iter()
            .find(|c| c["index"].as_u64().unwrap_or(0) == 0)
        else {
            return out.freeze();
        };
        let delta = &choice["delta"];
        if let Some(text) = reasoning_of(delta).filter(|t| !t.is_empty()) {
            self.reasoning_delta(text, &mut out);
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(text, &mut out);
        }
        let calls = delta["tool_calls"].as_array().map(Vec::as_slice);
        for call in calls.unwrap_or_default() {
            self.call_delta(call, &mut out);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
        out.freeze()
    }

    /// The engine's stream ended: closes every open item and sends `response.completed` (or
    /// `response.incomplete` when the engine stopped at its token limit or a content filter)
    /// with the whole response, usage included when a chunk carried it.
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if self.ended.is_some() {
            return out.freeze();
        }
        self.start_into(&mut out);
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|p| p.chat_index);
        for call in pending {
            self.announce_call(call, &mut out);
        }
        if self.items.is_empty() {
            // An empty answer is still a message, as OpenAI's would be.
            self.open_message(&mut out);
        }
        let (status, reason) = outcome(self.finish_reason.as_deref());
        let last = self.items.len().saturating_sub(1);
        for i in 0..self.items.len() {
            if self.items[i].open {
                let incomplete = status == "incomplete" && i == last;
                self.close(
                    i,
                    if incomplete {
                        "incomplete"
                    } else {
                        "completed"
                    },
                    &mut out,
                );
            }
        }
        let output = self.output();
        let response = self.build(status, reason, Value::Null, output);
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(&mut out, kind, json!({ "response": response }));
        self.ended = Some(response);
        out.freeze()
    }

    /// The engine's stream broke: `response.failed` with `error: {code, message}`, keeping
    /// the output so far. The openai SDK's type lists the codes it knows (`server_error`,
    /// `rate_limit_exceeded`, ...); `server_error` suits a broken engine.
    pub fn fail(&mut self, code: &str, message: &str) -> Bytes {
        let mut out = BytesMut::new();
        if self.ended.is_some() {
            return out.freeze();
        }
        self.start_into(&mut out);
        let output = self
            .items
            .iter()
            .map(|s| s.item.done(if s.open { "incomplete" } else { s.status }))
            .collect();
        let error = json!({"code": code, "message": message});
        let response = self.build("failed", None, error, output);
        self.emit(&mut out, "response.failed", json!({ "response": response }));
        self.ended = Some(response);
        out.freeze()
    }

    /// The response as it stands: the final one after `finish` or `fail` (for the store), else
    /// an in-progress snapshot.
    pub fn response(&self) -> Value {
        match &self.ended {
            Some(response) => response.clone(),
            None => {
                let output = self.items.iter().map(|s| s.item.done("in_progress"));
                self.build("in_progress", None, Value::Null, output.collect())
            }
        }
    }

    fn build(&self, status: &str, reason: Option<&str>, error: Value, output: Vec<Value>) -> Value {
        response_object(Parts {
            id: &self.id,
            created_at: self.created_at,
            settings: &self.settings,
            status,
            incomplete_reason: reason,
            error,
            output,
            usage: self.usage.as_ref(),
        })
    }

    /// The final output: each item with the status it was closed with.
    fn output(&self) -> Vec<Value> {
        self.items.iter().map(|s| s.item.done(s.status)).collect()
    }

    fn start_into(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.build("in_progress", None, Value::Null, Vec::new());
        self.emit(out, "response.created", json!({ "response": response }));
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    /// Writes one event; its `type` and `sequence_number` lead its fields.
    fn emit(&mut self, out: &mut BytesMut, kind: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("type".into(), json!(kind));
        event.insert("sequence_number".into(), json!(self.sequence));
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        self.sequence += 1;
        out.put_slice(b"event: ");
        out.put_slice(kind.as_bytes());
        out.put_slice(b"\ndata: ");
        // Serialising a Value into a Vec cannot fail.
        out.put_slice(&serde_json::to_vec(&Value::Object(event)).unwrap_or_default());
        out.put_slice(b"\n\n");
    }

    /// The index of the last item if it is open and `is_kind` holds for it.
    fn open_last(&self, is_kind: fn(&Item) -> bool) -> Option<usize> {
        let last = self.items.len().checked_sub(1)?;
        let slot = &self.items[last];
        (slot.open && is_kind(&slot.item)).then_some(last)
    }

    fn reasoning_delta(&mut self, text: &str, out: &mut BytesMut) {
        let index = match self.open_last(|i| matches!(i, Item::Reasoning { .. })) {
            Some(i) => i,
            None => {
                self.close_open(out);
                let id = item_id("rs", &self.id, self.reasonings);
                self.reasonings += 1;
                let index = self.announce(
                    Item::Reasoning {
                        id,
                        text: "".into(),
                    },
                    None,
                    out,
                );
                let item_id = self.items[index].item.id().to_owned();
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": ""}}),
                );
                index
            }
        };
        if let Item::Reasoning { text: all, .. } = &mut self.items[index].item {
            all.push_str(text);
        }
        let item_id = self.items[index].item.id().to_owned();
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            json!({"item_id": item_id, "output_index": index, "summary_index": 0, "delta": text}),
        );
    }

    fn text_delta(&mut self, text: &str, out: &mut BytesMut) {
        let index = match self.open_last(|i| matches!(i, Item::Message { .. })) {
            Some(i) => i,
            None => {
                self.close_open(out);
                self.open_message(out)
            }
        };
        if let Item::Message { text: all, .. } = &mut self.items[index].item {
            all.push_str(text);
        }
        let item_id = self.items[index].item.id().to_owned();
        self.emit(
            out,
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": index, "content_index": 0,
                   "delta": text, "logprobs": []}),
        );
    }

    fn open_message(&mut self, out: &mut BytesMut) -> usize {
        let id = item_id("msg", &self.id, self.messages);
        self.messages += 1;
        let index = self.announce(
            Item::Message {
                id,
                text: "".into(),
            },
            None,
            out,
        );
        let item_id = self.items[index].item.id().to_owned();
        self.emit(
            out,
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": index, "content_index": 0,
                   "part": output_text("")}),
        );
        index
    }

    fn call_delta(&mut self, call: &Value, out: &mut BytesMut) {
        let chat_index = call["index"].as_u64().unwrap_or(0);
        let arguments = call["function"]["arguments"].as_str().unwrap_or("");
        if let Some(index) = self
            .items
            .iter()
            .position(|s| s.chat_index == Some(chat_index))
        {
            // A call already closed (the engine moved on to text, then came back) has had its
            // done events; more pieces of it cannot be sent any more.
            if !self.items[index].open || arguments.is_empty() {
                return;
            }
            if let Item::Call { arguments: all, .. } = &mut self.items[index].item {
                all.push_str(arguments);
            }
            let item_id = self.items[index].item.id().to_owned();
            self.emit(
                out,
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": index, "delta": arguments}),
            );
            return;
        }
        let position = match self.pending.iter().position(|p| p.chat_index == chat_index) {
            Some(p) => p,
            None => {
                self.close_open_text(out);
                self.pending.push(Pending {
                    chat_index,
                    call_id: None,
                    name: String::new(),
                    arguments: String::new(),
                });
                self.pending.len() - 1
            }
        };
        let pending = &mut self.pending[position];
        if pending.call_id.is_none() {
            pending.call_id = call["id"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
        }
        pending
            .name
            .push_str(call["function"]["name"].as_str().unwrap_or(""));
        pending.arguments.push_str(arguments);
        if !pending.name.is_empty() {
            let pending = self.pending.remove(position);
            self.announce_call(pending, out);
        }
    }

    fn announce_call(&mut self, call: Pending, out: &mut BytesMut) {
        let n = self.calls;
        self.calls += 1;
        let item = Item::Call {
            id: item_id("fc", &self.id, n),
            call_id: call_id_or(call.call_id.as_deref(), &self.id, n),
            name: call.name,
            arguments: call.arguments.clone(),
        };
        let index = self.announce(item, Some(call.chat_index), out);
        if !call.arguments.is_empty() {
            let item_id = self.items[index].item.id().to_owned();
            self.emit(
                out,
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": index, "delta": call.arguments}),
            );
        }
    }

    /// Adds an item and sends `response.output_item.added`; returns its output index.
    fn announce(&mut self, item: Item, chat_index: Option<u64>, out: &mut BytesMut) -> usize {
        let index = self.items.len();
        let added = item.added();
        self.items.push(Slot {
            item,
            open: true,
            status: "in_progress",
            chat_index,
        });
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        index
    }

    /// Closes every open item: something new is starting.
    fn close_open(&mut self, out: &mut BytesMut) {
        for i in 0..self.items.len() {
            if self.items[i].open {
                self.close(i, "completed", out);
            }
        }
    }

    /// Closes open reasoning and text: a tool call is starting. Other calls stay open, since
    /// engines may send the pieces of parallel calls interleaved.
    fn close_open_text(&mut self, out: &mut BytesMut) {
        for i in 0..self.items.len() {
            if self.items[i].open && !matches!(self.items[i].item, Item::Call { .. }) {
                self.close(i, "completed", out);
            }
        }
    }

    /// Sends an item's done events.
    fn close(&mut self, index: usize, status: &'static str, out: &mut BytesMut) {
        self.items[index].open = false;
        self.items[index].status = status;
        let item = self.items[index].item.clone();
        let item_id = item.id().to_owned();
        match &item {
            Item::Reasoning { text, .. } => {
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                           "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": text}}),
                );
            }
            Item::Message { text, .. } => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                           "text": text, "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                           "part": output_text(text)}),
                );
            }
            Item::Call { arguments, .. } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": index, "arguments": arguments}),
                );
            }
        }
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item.done(status)}),
        );
    }
}
