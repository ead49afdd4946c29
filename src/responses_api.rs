//! The Responses API on engines without `/v1/responses`: the request becomes one chat request
//! (`translate::responses`), the engine's answer (whole or streamed, deltas relayed as they
//! arrive) becomes a Responses object or the Responses event stream, and with
//! `--responses-store N` the last N responses are kept so that `previous_response_id`, `GET` and
//! `DELETE` work (on this replica only: replicas do not share the store).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::read_body;
use crate::proxy::{self, json_response, Surface};
use crate::responses_store::{ResponsesStore, StoredResponse};
use crate::state::AppState;
use crate::translate::body::JsonBody;
use crate::translate::responses::{self, ChatPlan, ResponsesStream};
use crate::translate::{adapt, prepare};
use crate::upstream::forward::{self, Broken};

/// Serves one `POST .../responses`: forwarded untouched to an engine that has the route,
/// translated over chat completions otherwise.
pub async fn create(
    state: &AppState,
    surface: Surface,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    proxy::check_api_version(state, surface, uri)?;
    let bytes = read_body(
        headers,
        body,
        state.config.max_body_size,
        state.config.body_read_timeout,
    )
    .await?;
    let parsed = JsonBody::parse(&bytes)?;
    let target = proxy::resolve(state, surface, None, &parsed).await?;
    let engine = target.upstream.engine().await;
    if engine.capabilities().responses {
        let model = prepare::lacks_model(&parsed).then_some(&*target.model);
        let out = prepare::finish(&bytes, parsed, false, model, &[]);
        let answer = target
            .upstream
            .forward_json("/v1/responses", out, headers)
            .await?;
        return Ok(forward::relay(answer));
    }
    drop(parsed);

    let history = match responses::previous_response_id(&bytes)? {
        Some(previous) => match &state.responses {
            Some(store) => store.conversation(&previous),
            None => {
                return Err(ApiError::invalid_param(
                    "previous_response_id",
                    "This endpoint keeps no conversation state, so 'previous_response_id' cannot be used: send the whole conversation in 'input' (or start the proxy with --responses-store N).",
                ))
            }
        },
        None => None,
    };
    let mut plan = responses::to_chat(&bytes, &target.model, history.as_deref())?;
    plan.settings["model"] = Value::from(&*target.deployment);
    let store = state.responses.clone().filter(|_| plan.wants_store());
    if store.is_none() {
        plan.settings["store"] = Value::Bool(false);
    }
    // The chat request gets the same engine adaptations as any other.
    let chat_body = {
        let chat = JsonBody::parse(&plan.chat_body)?;
        let edits = adapt::chat(&chat, engine)?;
        let set: Vec<(&str, &str)> = edits.iter().map(|(k, v)| (*k, v.as_str())).collect();
        prepare::finish(&plan.chat_body, chat, false, None, &set)
    };
    let answer = target
        .upstream
        .forward_json("/v1/chat/completions", chat_body, headers)
        .await?;
    let id = responses::new_response_id();
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    if plan.stream && forward::is_event_stream(&answer.response) {
        return Ok(stream(answer, plan, id, created_at, store));
    }
    let chat_answer = answer.read_all().await?;
    let chat: Value =
        serde_json::from_slice(&chat_answer).map_err(|_| ApiError::UpstreamInvalidResponse {
            detail: "the engine's answer is not JSON".into(),
        })?;
    let response = responses::from_chat(&chat, &plan, &id, created_at);
    remember(store.as_deref(), &id, &plan, &response);
    if plan.stream {
        // The engine ignored `stream`: replay the whole answer as the event sequence.
        let mut events = ResponsesStream::new(&plan, &id, created_at);
        let mut out = events.start().to_vec();
        for chunk in crate::translate::sse::completion_as_events(&chat)
            .unwrap_or_default()
            .split(|&b| b == b'\n')
            .filter_map(|l| l.strip_prefix(b"data: "))
            .filter_map(|d| serde_json::from_slice::<Value>(d).ok())
        {
            out.extend_from_slice(&events.push(&chunk));
        }
        out.extend_from_slice(&events.finish());
        return Ok(forward::sse_response(futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(Bytes::from(out)) },
        )));
    }
    let bytes = serde_json::to_vec(&response).map_err(|_| ApiError::UpstreamInvalidResponse {
        detail: "cannot write the response".into(),
    })?;
    Ok(json_response(Bytes::from(bytes)))
}

/// The engine's chat stream as the Responses event stream, event by event.
fn stream(
    answer: crate::upstream::client::Answer,
    plan: ChatPlan,
    id: String,
    created_at: u64,
    store: Option<Arc<ResponsesStore>>,
) -> Response {
    let crate::upstream::client::Answer {
        response,
        in_flight,
        idle_timeout,
        ..
    } = answer;
    let chunks = forward::Chunks::new(response.into_body(), idle_timeout);
    let events = ResponsesStream::new(&plan, &id, created_at);
    let state = (
        chunks,
        events,
        crate::translate::sse::SseNormalizer::new(),
        plan,
        id,
        store,
        in_flight,
        false,
    );
    let body = futures_util::stream::unfold(Some(state), |state| async move {
        let (mut chunks, mut events, mut sse, plan, id, store, in_flight, started) = state?;
        let mut out = Vec::new();
        if !started {
            out.extend_from_slice(&events.start());
        }
        loop {
            match chunks.next().await {
                Some(Ok(bytes)) => {
                    let normalised = sse.push(&bytes);
                    feed(&mut events, &normalised, &mut out);
                    if sse.is_done() {
                        forward::finish_in_background(chunks);
                        out.extend_from_slice(&events.finish());
                        remember(store.as_deref(), &id, &plan, &events.response());
                        return Some((Ok::<_, std::io::Error>(Bytes::from(out)), None));
                    }
                    if !out.is_empty() {
                        let next = (chunks, events, sse, plan, id, store, in_flight, true);
                        return Some((Ok(Bytes::from(out)), Some(next)));
                    }
                }
                Some(Err(broken)) => {
                    let code = match broken {
                        Broken::Idle(_) => "server_error",
                        Broken::Upstream(_) => "server_error",
                    };
                    out.extend_from_slice(&events.fail(code, &broken.to_string()));
                    return Some((Ok(Bytes::from(out)), None));
                }
                None => {
                    feed(&mut events, &sse.finish(), &mut out);
                    out.extend_from_slice(&events.finish());
                    remember(store.as_deref(), &id, &plan, &events.response());
                    return Some((Ok(Bytes::from(out)), None));
                }
            }
        }
    });
    forward::sse_response(body)
}

/// Pushes each normalised `data:` event (but `[DONE]`) into the Responses state machine.
fn feed(events: &mut ResponsesStream, normalised: &[u8], out: &mut Vec<u8>) {
    for data in normalised
        .split(|&b| b == b'\n')
        .filter_map(|l| l.strip_prefix(b"data: "))
        .filter(|d| *d != b"[DONE]")
    {
        if let Ok(chunk) = serde_json::from_slice::<Value>(data) {
            out.extend_from_slice(&events.push(&chunk));
        }
    }
}

/// Keeps a finished response when the store is on and the client did not opt out.
fn remember(store: Option<&ResponsesStore>, id: &str, plan: &ChatPlan, response: &Value) {
    let Some(store) = store else { return };
    if response.get("status").and_then(Value::as_str) == Some("failed") {
        return;
    }
    let messages = plan.conversation_with(responses::assistant_from_response(response));
    store.insert(
        id,
        StoredResponse {
            response: response.clone(),
            messages,
        },
    );
}

/// `GET .../responses/{id}`.
pub fn get(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let stored = lookup(state, id)?;
    let bytes = serde_json::to_vec(&stored.response).map_err(|_| ApiError::NotFound)?;
    Ok(json_response(Bytes::from(bytes)))
}

/// `DELETE .../responses/{id}`.
pub fn delete(state: &AppState, id: &str) -> Result<Response, ApiError> {
    lookup(state, id)?;
    if let Some(store) = &state.responses {
        store.delete(id);
    }
    let body = serde_json::json!({"id": id, "object": "response.deleted", "deleted": true});
    Ok(json_response(Bytes::from(body.to_string())))
}

fn lookup(state: &AppState, id: &str) -> Result<Arc<StoredResponse>, ApiError> {
    let store = state
        .responses
        .as_ref()
        .ok_or_else(|| ApiError::ResponseNotFound {
            id: id.to_owned(),
            stateless: true,
        })?;
    store.get(id).ok_or_else(|| ApiError::ResponseNotFound {
        id: id.to_owned(),
        stateless: false,
    })
}
