//! Stateful Responses on translated routes: the conversations the gateway
//! keeps itself, so `store`, `previous_response_id` and `GET`/`DELETE
//! /v1/responses/{id}` work where no target stores anything.
//!
//! Place in the pipeline: `endpoints::responses` calls [`prepare`] once the
//! request is parsed, routed and admitted, before the translation: on a
//! route with a translated target it expands `previous_response_id` into
//! the conversation it names (its input items, then its output, then the
//! new input; instructions are not carried over, as the API says) and
//! takes `store` and `previous_response_id` out of the body (targets get a
//! plain stateless request, `store: false`). After the answer, [`keep`]
//! writes the conversation (input items + the response object) to the
//! state store under the response's id, scoped to the caller's key, before
//! the client can see the response's end (a JSON body is held, a stream's
//! `response.completed` event waits for the write), so the next turn finds
//! it on any replica sharing the store. `endpoints::responses_stored` reads
//! and deletes them ([`load`], [`delete`]). Routes whose every target
//! serves `/responses` natively keep the upstream's own state: nothing
//! here. Must not translate anything: the Responses <-> chat translation is
//! `api::responses`'.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::responses::{Echo, ResponsesRequest};
use crate::api::sse::SseDecoder;
use crate::api::{ErrorKind, GatewayError};
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, full};
use crate::state::Store;

/// What is kept of one response: the route that answered, the
/// conversation's input items and the response object.
#[derive(Debug, Deserialize)]
pub(crate) struct Record {
    pub route: String,
    pub input: Vec<Value>,
    pub response: Value,
}

/// A request whose answer the gateway keeps.
#[derive(Debug)]
pub(crate) struct Keep {
    store: Store,
    scope: String,
    route: String,
    /// The conversation's input items, as JSON (an array).
    input: Bytes,
    previous: Option<String>,
}

/// Whose stored responses a caller sees: its key's alias, else (on an
/// open gateway) the hash of the key it sent or its address.
fn scope(rc: &RequestCtx) -> String {
    match rc.caller.key() {
        Some(k) => format!("k:{}", k.alias),
        None => format!("c:{}", rc.client_key),
    }
}

fn storage_key(scope: &str, id: &str) -> String {
    format!("resp:{scope}:{id}")
}

fn unavailable(e: &crate::state::StoreError) -> GatewayError {
    tracing::warn!(error = %e, "stored responses could not be reached");
    GatewayError::new(
        ErrorKind::Unavailable,
        "Stored responses cannot be reached right now (the shared state store is unavailable). \
         Retry shortly.",
    )
    .with_code("state_unavailable")
}

/// The stored response `id` of the caller, if there is one.
pub(crate) async fn load(rc: &RequestCtx, id: &str) -> Result<Option<Record>, GatewayError> {
    let key = storage_key(&scope(rc), id);
    let store = &rc.rt.table.store;
    let found = store
        .responses_get_many(&[&key])
        .await
        .map_err(|e| unavailable(&e))?;
    let Some(bytes) = found.into_iter().next().flatten() else {
        return Ok(None);
    };
    match serde_json::from_slice::<Record>(&bytes) {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            tracing::warn!(error = %e, "a stored response does not read back; ignored");
            Ok(None)
        }
    }
}

/// Deletes the caller's stored response `id`; whether it existed.
pub(crate) async fn delete(rc: &RequestCtx, id: &str) -> Result<bool, GatewayError> {
    let key = storage_key(&scope(rc), id);
    let n = rc
        .rt
        .table
        .store
        .responses_delete_many(&[&key])
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(n > 0)
}

/// Expands `previous_response_id` and takes the state fields out of the
/// body (see the module doc) of a request to `route`, a route with a
/// translated target (`some_native`: and a passthrough one too); `Some`
/// when the answer is to be kept.
pub(crate) async fn prepare(
    rc: &RequestCtx,
    route: &str,
    some_native: bool,
    request: &mut ResponsesRequest,
) -> Result<Option<Keep>, GatewayError> {
    let body = &mut request.body;
    let store = body.get("store") != Some(&Value::Bool(false));
    let previous = match body.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => {
            return Err(GatewayError::invalid_param(
                "previous_response_id",
                "'previous_response_id' must be a string.",
            ));
        }
    };
    if !store && previous.is_none() {
        return Ok(None);
    }
    let keep = |input: Bytes, previous: Option<String>| Keep {
        store: rc.rt.table.store.clone(),
        scope: scope(rc),
        route: route.to_string(),
        input,
        previous,
    };
    let Some(id) = previous else {
        // A first turn: the body is sent as it is; its input is kept.
        let input = match body.get("input") {
            Some(Value::String(text)) => {
                serde_json::to_vec(&[json!({"role": "user", "content": text})])
            }
            Some(Value::Array(items)) => serde_json::to_vec(items),
            _ => Ok(b"[]".to_vec()),
        };
        body.insert("store".into(), Value::Bool(false));
        return Ok(Some(keep(Bytes::from(input.unwrap_or_default()), None)));
    };
    let mut input = match load(rc, &id).await? {
        Some(record) => {
            let mut input = record.input;
            if let Value::Object(mut response) = record.response
                && let Some(Value::Array(output)) = response.remove("output")
            {
                input.extend(output);
            }
            input
        }
        // Maybe the upstream's own: its native targets get it as sent.
        None if some_native => return Ok(None),
        None => return Err(previous_not_found(&id)),
    };
    match body.remove("input") {
        Some(Value::String(text)) => input.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => input.extend(items),
        _ => {}
    }
    let input_bytes = Bytes::from(serde_json::to_vec(&input).unwrap_or_default());
    // The replayed conversation is sent too: size buffers and TPM holds for it.
    request.wire_len = request.wire_len.max(input_bytes.len());
    body.insert("input".into(), Value::Array(input));
    body.remove("previous_response_id");
    // The gateway is the store: targets answer statelessly.
    body.insert("store".into(), Value::Bool(false));
    Ok(store.then(|| keep(input_bytes, Some(id))))
}

/// The 400 the API answers for a `previous_response_id` it does not know.
fn previous_not_found(id: &str) -> GatewayError {
    let shown: String = id.chars().take(64).collect();
    GatewayError::invalid_param(
        "previous_response_id",
        format!("Previous response with id '{shown}' not found."),
    )
    .with_code("previous_response_not_found")
}

impl Keep {
    /// What a translated answer echoes: stored, and what it continues.
    pub(crate) fn echo(&self, echo: &mut Echo) {
        echo.fields.insert("store".into(), Value::Bool(true));
        if let Some(id) = &self.previous {
            echo.fields
                .insert("previous_response_id".into(), Value::String(id.clone()));
        }
    }

    /// Writes the record of the response object `response`.
    async fn write(&self, response: &Map<String, Value>) {
        let Some(Value::String(id)) = response.get("id") else {
            return;
        };
        let mut record = Vec::with_capacity(self.input.len() + 256);
        record.extend_from_slice(b"{\"route\":");
        let route = serde_json::to_vec(&self.route).unwrap_or_default();
        record.extend_from_slice(&route);
        record.extend_from_slice(b",\"input\":");
        record.extend_from_slice(&self.input);
        record.extend_from_slice(b",\"response\":");
        if serde_json::to_writer(&mut record, response).is_err() {
            return;
        }
        record.push(b'}');
        let key = storage_key(&self.scope, id);
        match self
            .store
            .responses_put_many(&[(&key, record.into())])
            .await
        {
            Ok(1) => {}
            Ok(_) => tracing::warn!(
                route = self.route,
                max_entry_bytes = self.store.responses_settings().max_entry_bytes,
                "a conversation is over state.responses.max_entry_bytes: not stored"
            ),
            Err(e) => tracing::warn!(error = %e, "a response could not be stored"),
        }
    }
}

/// The client's response with the conversation kept before its end (see
/// the module doc). Only answers that succeeded are kept.
pub(crate) async fn keep(keep: Keep, response: Response<Body>) -> Response<Body> {
    if !response.status().is_success() {
        return response;
    }
    let sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (parts, body) = response.into_parts();
    if !sse {
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(never) => match never {},
        };
        if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&bytes) {
            keep.write(&obj).await;
        }
        return Response::from_parts(parts, full(bytes));
    }
    let state = (body.into_data_stream(), SseDecoder::new(), Arc::new(keep));
    let frames = futures_util::stream::unfold(state, |(mut body, mut decoder, keep)| async move {
        let chunk = match body.next().await? {
            Ok(chunk) => chunk,
            Err(never) => match never {},
        };
        for event in decoder.decode(&chunk) {
            if !last_event(&event.event, &event.data) {
                continue;
            }
            if let Ok(mut v) = serde_json::from_str::<Value>(&event.data)
                && last_event(v["type"].as_str().unwrap_or_default(), "")
                && let Some(Value::Object(obj)) = v.get_mut("response").map(Value::take)
            {
                keep.write(&obj).await;
            }
        }
        let frame = Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk));
        Some((frame, (body, decoder, keep)))
    });
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}

/// Whether an event (by its name, or its data when it has none) ends a
/// response with its whole object.
fn last_event(name: &str, data: &str) -> bool {
    const LAST: [&str; 2] = ["response.completed", "response.incomplete"];
    match name {
        "" => LAST.iter().any(|t| data.contains(t)),
        name => LAST.contains(&name),
    }
}
