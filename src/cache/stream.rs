//! Cached chat streams: what a finished stream is worth keeping, and the
//! conversions between streamed and whole chat answers.
//!
//! Place in the pipeline: `server::chat_stream` feeds every run of upstream
//! events through a [`StreamScan`] (is it complete, error-free, does it carry
//! usage; the same run without usage for clients that did not ask for it),
//! and on a cache hit turns a stored answer into what the client asked for:
//! [`split`] makes an SSE stream of a `chat.completion`, [`assemble`] makes a
//! `chat.completion` of a stored stream, [`strip_usage`] drops the usage
//! the gateway asked for on its own ([`drop_null_usage`]: only the
//! `"usage": null` fields, as bytes). Chunk and completion ids and
//! `created` are kept as stored: a cached answer is that answer, as for
//! non-streaming hits. Pure data: must not do I/O or decide what is cacheable.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
use serde_json::{Map, Value, json};

use crate::api::sse::{DONE, SseDecoder, SseEvent, data_event, named_event};
use crate::api::sse_cut::event_spans;
use crate::api::usage::mentions_usage;

/// Why a stored answer cannot serve a request (the caller treats it as a miss).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("the stored answer is not a chat completion")]
    NotCompletion,
    #[error("the stored stream holds no chat completion chunk")]
    NoChunks,
    #[error("the stored answer has no usage, and the client asked for it")]
    NoUsage,
}

/// Watches a stream go by, one run of whole events at a time.
#[derive(Debug, Default)]
pub struct StreamScan {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    /// `data: [DONE]` was seen.
    pub done: bool,
    /// An in-band `{"error": ...}` event (or data after `[DONE]`) was seen.
    pub error: bool,
    /// A chunk carried a non-null `usage`.
    pub usage: bool,
}

impl StreamScan {
    /// Takes in `run` (whole events); returns the run without usage when it
    /// carried some (`None`: the run is the same either way).
    pub fn feed(&mut self, run: &[u8]) -> Option<Bytes> {
        self.events.clear();
        self.decoder.feed(run, &mut self.events);
        let mut has_usage = false;
        for e in &self.events {
            if self.done {
                self.error = true;
            }
            if e.data == "[DONE]" {
                self.done = true;
                continue;
            }
            if !(e.data.contains("\"usage\"") || e.data.contains("\"error\"")) {
                continue;
            }
            match serde_json::from_str::<Value>(&e.data) {
                Ok(Value::Object(m)) => {
                    self.error |= m.contains_key("error");
                    if m.get("usage").is_some_and(|u| !u.is_null()) {
                        has_usage = true;
                    }
                }
                _ => self.error = true,
            }
        }
        self.usage |= has_usage;
        has_usage.then(|| without_usage(run))
    }

    /// Ended with `[DONE]`, no error, whole events only.
    pub fn complete(&self) -> bool {
        self.done && !self.error && self.decoder.at_boundary()
    }
}

/// `events` re-encoded with usage chunks dropped (a usage field on a chunk
/// that also has choices is removed).
fn encode_without_usage(events: &[SseEvent]) -> Bytes {
    let mut out = BytesMut::new();
    for e in events {
        // Only events whose usage is an object are parsed: `"usage":null`
        // on every chunk is left to `drop_null_usage`, as bytes.
        let data = if mentions_usage(e.data.as_bytes()) {
            match serde_json::from_str::<Value>(&e.data) {
                Ok(Value::Object(mut m)) if m.get("usage").is_some_and(|u| !u.is_null()) => {
                    let no_choices = m
                        .get("choices")
                        .is_none_or(|c| c.as_array().is_some_and(Vec::is_empty));
                    if no_choices {
                        continue;
                    }
                    m.remove("usage");
                    Value::Object(m).to_string()
                }
                _ => e.data.clone(),
            }
        } else {
            e.data.clone()
        };
        if e.event.is_empty() {
            out.extend_from_slice(&data_event(data.as_bytes()));
        } else {
            out.extend_from_slice(&named_event(&e.event, data.as_bytes()));
        }
    }
    out.freeze()
}

/// A stored stream (or a run of whole events) without the usage the
/// gateway asked for on its own: usage chunks, usage fields, and the
/// `"usage": null` chunks carry once usage was asked for.
pub fn strip_usage(stream: &[u8]) -> Bytes {
    drop_null_usage(without_usage(stream))
}

/// `stream` (whole events) with usage chunks dropped and usage fields
/// removed ([`encode_without_usage`]). Only the events that carry usage
/// are decoded and written again; the others go on as they came.
fn without_usage(stream: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(stream.len());
    for span in event_spans(stream) {
        let event = &stream[span];
        if mentions_usage(event) {
            out.extend_from_slice(&encode_without_usage(&SseDecoder::new().decode(event)));
        } else {
            out.extend_from_slice(event);
        }
    }
    out.freeze()
}

/// `run` (whole events) without the `"usage": null` field chunks carry once
/// usage was asked for, where it closes an event's top-level object at the
/// end of its data line (`,"usage":null}`, the compact form OpenAI-compatible
/// servers and the gateway's translators write); any other form is left as
/// it is. Returns `run` itself (no copy) when it has none.
pub fn drop_null_usage(run: Bytes) -> Bytes {
    // Where the field ends a line (a vector search for it: every chunk of
    // a stream goes through here).
    let mut ends = NULL_USAGE
        .find_iter(&run)
        .map(|at| at + NULL_USAGE_FIELD.len())
        .filter(|&i| matches!(run.get(i), Some(b'\n' | b'\r')))
        .peekable();
    if ends.peek().is_none() {
        return run;
    }
    let mut out = BytesMut::with_capacity(run.len());
    let mut from = 0;
    for i in ends {
        out.extend_from_slice(&run[from..i - NULL_USAGE_FIELD.len()]);
        out.extend_from_slice(b"}");
        from = i;
    }
    out.extend_from_slice(&run[from..]);
    out.freeze()
}

const NULL_USAGE_FIELD: &[u8] = b",\"usage\":null}";

/// The searcher for [`NULL_USAGE_FIELD`], built once.
static NULL_USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(NULL_USAGE_FIELD));

/// The fields every chunk and the completion share.
const HEAD: &[&str] = &[
    "id",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
];

#[derive(Debug, Default)]
struct ChoiceAcc {
    index: u64,
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<(u64, Map<String, Value>)>,
    logprobs: Option<Vec<Value>>,
    finish_reason: Value,
}

fn append(to: &mut Option<String>, v: Option<&Value>) {
    if let Some(s) = v.and_then(Value::as_str) {
        to.get_or_insert_with(String::new).push_str(s);
    }
}

impl ChoiceAcc {
    fn take(&mut self, c: &Value) {
        let delta = &c["delta"];
        if let Some(r) = delta.get("role").filter(|r| !r.is_null()) {
            self.role = Some(r.clone());
        }
        append(&mut self.content, delta.get("content"));
        append(&mut self.refusal, delta.get("refusal"));
        for frag in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = frag["index"].as_u64().unwrap_or(0);
            let pos = match self.tool_calls.iter().position(|(j, _)| *j == i) {
                Some(p) => p,
                None => {
                    self.tool_calls.push((i, Map::new()));
                    self.tool_calls.len() - 1
                }
            };
            let call = &mut self.tool_calls[pos].1;
            for k in ["id", "type"] {
                if let Some(v) = frag.get(k).filter(|v| !v.is_null()) {
                    call.insert(k.into(), v.clone());
                }
            }
            let f = call
                .entry("function")
                .or_insert_with(|| json!({"name": "", "arguments": ""}));
            for k in ["name", "arguments"] {
                if let (Some(part), Some(Value::String(s))) =
                    (frag["function"][k].as_str(), f.get_mut(k))
                {
                    s.push_str(part);
                }
            }
        }
        if let Some(lp) = c["logprobs"]["content"].as_array() {
            self.logprobs
                .get_or_insert_with(Vec::new)
                .extend(lp.iter().cloned());
        }
        if !c["finish_reason"].is_null() {
            self.finish_reason = c["finish_reason"].clone();
        }
    }

    fn finish(self) -> Value {
        let mut message = Map::new();
        let role = self.role.unwrap_or_else(|| json!("assistant"));
        message.insert("role".into(), role);
        message.insert(
            "content".into(),
            self.content.map_or(Value::Null, Value::String),
        );
        if let Some(r) = self.refusal {
            message.insert("refusal".into(), Value::String(r));
        }
        if !self.tool_calls.is_empty() {
            let calls = self.tool_calls.into_iter().map(|(_, c)| Value::Object(c));
            message.insert("tool_calls".into(), Value::Array(calls.collect()));
        }
        let logprobs = self.logprobs.map_or(Value::Null, |c| json!({"content": c}));
        json!({"index": self.index, "message": message, "logprobs": logprobs,
               "finish_reason": self.finish_reason})
    }
}

/// A `chat.completion` from a stored stream: content and refusals
/// concatenated, tool calls assembled from their fragments, the last
/// `finish_reason`, and `usage` when the stream had it.
pub fn assemble(stream: &[u8]) -> Result<Bytes, ConvertError> {
    let mut head = Map::new();
    let mut choices: Vec<ChoiceAcc> = Vec::new();
    let mut usage = None;
    let mut chunks = 0;
    for e in SseDecoder::new().decode(stream) {
        if e.data == "[DONE]" {
            continue;
        }
        let Ok(Value::Object(chunk)) = serde_json::from_str::<Value>(&e.data) else {
            return Err(ConvertError::NoChunks);
        };
        chunks += 1;
        for k in HEAD {
            if let Some(v) = chunk.get(*k).filter(|v| !v.is_null()) {
                head.entry(*k).or_insert_with(|| v.clone());
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        for c in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = c["index"].as_u64().unwrap_or(0);
            let acc = match choices.iter().position(|a| a.index == index) {
                Some(p) => &mut choices[p],
                None => {
                    choices.push(ChoiceAcc {
                        index,
                        ..ChoiceAcc::default()
                    });
                    let last = choices.len() - 1;
                    &mut choices[last]
                }
            };
            acc.take(c);
        }
    }
    if chunks == 0 {
        return Err(ConvertError::NoChunks);
    }
    choices.sort_by_key(|c| c.index);
    head.insert("object".into(), json!("chat.completion"));
    let choices: Vec<Value> = choices.into_iter().map(ChoiceAcc::finish).collect();
    head.insert("choices".into(), Value::Array(choices));
    if let Some(u) = usage {
        head.insert("usage".into(), u);
    }
    Ok(Bytes::from(Value::Object(head).to_string()))
}

/// An SSE stream from a stored `chat.completion`: per choice a role chunk,
/// a content (or refusal) chunk, one chunk per tool call and a finish
/// chunk; then a usage chunk when `include_usage`, then `[DONE]`.
pub fn split(body: &[u8], include_usage: bool) -> Result<Bytes, ConvertError> {
    let Ok(Value::Object(done)) = serde_json::from_slice::<Value>(body) else {
        return Err(ConvertError::NotCompletion);
    };
    let Some(choices) = done.get("choices").and_then(Value::as_array) else {
        return Err(ConvertError::NotCompletion);
    };
    let usage = done.get("usage").filter(|u| !u.is_null());
    if include_usage && usage.is_none() {
        return Err(ConvertError::NoUsage);
    }
    let mut head = Map::new();
    for k in HEAD {
        if let Some(v) = done.get(*k) {
            head.insert((*k).into(), v.clone());
        }
    }
    head.insert("object".into(), json!("chat.completion.chunk"));
    let mut out = BytesMut::with_capacity(body.len() * 2);
    let mut emit = |choices: Value, usage: Option<&Value>| {
        let mut c = head.clone();
        c.insert("choices".into(), choices);
        if let Some(u) = usage {
            c.insert("usage".into(), u.clone());
        }
        out.extend_from_slice(&data_event(Value::Object(c).to_string().as_bytes()));
    };
    for choice in choices {
        let index = &choice["index"];
        let m = &choice["message"];
        let delta = |d: Value| json!([{"index": index, "delta": d, "logprobs": null, "finish_reason": null}]);
        let role = m.get("role").cloned().unwrap_or_else(|| json!("assistant"));
        let first = if m["content"].is_string() {
            json!("")
        } else {
            Value::Null
        };
        emit(delta(json!({"role": role, "content": first})), None);
        if let Some(text) = m["content"].as_str().filter(|t| !t.is_empty()) {
            let mut d = delta(json!({"content": text}));
            d[0]["logprobs"] = choice["logprobs"].clone();
            emit(d, None);
        }
        if let Some(r) = m["refusal"].as_str() {
            emit(delta(json!({"refusal": r})), None);
        }
        for (i, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
            let frag = json!({"index": i, "id": call["id"], "type": call["type"],
                              "function": call["function"]});
            emit(delta(json!({"tool_calls": [frag]})), None);
        }
        emit(
            json!([{"index": index, "delta": {}, "logprobs": null,
                    "finish_reason": choice["finish_reason"]}]),
            None,
        );
    }
    if include_usage {
        emit(json!([]), usage);
    }
    out.extend_from_slice(DONE);
    Ok(out.freeze())
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
