//! Cohere `/v2/chat` SSE stream -> OpenAI `chat.completion.chunk` events.
//!
//! Place in the pipeline: the `cohere` provider feeds the upstream SSE body
//! through `translated_sse` with a [`CohereStream`]. Cohere streams
//! `message-start` (id, role), `content-start`/`content-delta`/`content-end`
//! (text; `thinking` deltas are dropped), `tool-plan-delta` (dropped),
//! `tool-call-start` (id, name), `tool-call-delta` (argument fragments),
//! `tool-call-end`, `citation-*` and `debug` (dropped), and `message-end`
//! with `finish_reason` and `usage` (or `error`). Out come OpenAI chunks: the
//! role first, text as `delta.content`, tool calls as
//! `delta.tool_calls[{index, id, type, function{name, arguments}}]` then
//! fragments with `index` and `function.arguments` only, a last chunk with
//! an empty delta and `finish_reason`, the usage chunk (`choices: []`) when
//! the client asked for it, and `[DONE]`. A stream that ends before
//! `message-end`, or ends in `ERROR`/`TIMEOUT`/`error`, is a `BadResponse`.
//! Must not buffer the answer: each event is translated as it comes.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Value, json};

use super::bad_response;
use super::response::{finish_reason, now, usage_of};
use crate::api::sse::{DONE, SseEvent, data_event};
use crate::providers::translate::TranslateError;
use crate::providers::upstream::StreamTranslate;

#[derive(Debug)]
pub struct CohereStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    /// Cohere's tool-call index -> OpenAI's.
    tools: HashMap<u64, u64>,
    ended: bool,
}

impl CohereStream {
    pub fn new(model: &str, include_usage: bool) -> Self {
        CohereStream {
            id: format!("chatcmpl-cohere-{:016x}", fastrand::u64(..)),
            created: now(),
            model: model.to_string(),
            include_usage,
            started: false,
            tools: HashMap::new(),
            ended: false,
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": choices})
    }

    fn push(&mut self, delta: Value, finish: Value, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            let role = self.chunk(json!([{"index": 0,
                "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]));
            out.push(data_event(role.to_string().as_bytes()));
        }
        if delta.as_object().is_some_and(|d| d.is_empty()) && finish.is_null() {
            return;
        }
        let c = self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        );
        out.push(data_event(c.to_string().as_bytes()));
    }

    fn message_end(&mut self, data: &Value, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        let delta = data.get("delta");
        if let Some(error) = delta.and_then(|d| d.get("error")).and_then(Value::as_str) {
            return Err(bad_response(format!("Cohere stream error: {error}")));
        }
        let reason = delta
            .and_then(|d| d.get("finish_reason"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad_response("`message-end` without `finish_reason`"))?;
        let finish = finish_reason(reason)?;
        self.push(json!({}), Value::from(finish), out);
        if self.include_usage {
            let usage = delta
                .and_then(|d| d.get("usage"))
                .map(usage_of)
                .unwrap_or_else(
                    || json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
                );
            let mut c = self.chunk(json!([]));
            c["usage"] = usage;
            out.push(data_event(c.to_string().as_bytes()));
        }
        out.push(Bytes::from_static(DONE));
        self.ended = true;
        Ok(())
    }

    fn tool_index(&mut self, data: &Value) -> u64 {
        let cohere = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        let next = self.tools.len() as u64;
        *self.tools.entry(cohere).or_insert(next)
    }
}

impl StreamTranslate for CohereStream {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.ended || ev.data.is_empty() || ev.data == "[DONE]" {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&ev.data)
            .map_err(|_| bad_response("a stream event that is not JSON"))?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(ev.event.as_str());
        let message = data.pointer("/delta/message");
        match kind {
            "message-start" => {
                if let Some(id) = data.get("id").and_then(Value::as_str) {
                    self.id = id.to_string();
                }
                self.push(json!({}), Value::Null, out);
            }
            "content-start" | "content-delta" => {
                let text = message
                    .and_then(|m| m.pointer("/content/text"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !text.is_empty() {
                    self.push(json!({"content": text}), Value::Null, out);
                }
            }
            "tool-call-start" => {
                let call = message.and_then(|m| m.get("tool_calls"));
                let id = call.and_then(|c| c.get("id")).and_then(Value::as_str);
                let name = call
                    .and_then(|c| c.pointer("/function/name"))
                    .and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(bad_response("`tool-call-start` without id or name"));
                };
                let arguments = call
                    .and_then(|c| c.pointer("/function/arguments"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let index = self.tool_index(&data);
                self.push(
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                           "function": {"name": name, "arguments": arguments}}]}),
                    Value::Null,
                    out,
                );
            }
            "tool-call-delta" => {
                let arguments = message
                    .and_then(|m| m.pointer("/tool_calls/function/arguments"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !arguments.is_empty() {
                    let index = self.tool_index(&data);
                    self.push(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}),
                        Value::Null,
                        out,
                    );
                }
            }
            "message-end" => self.message_end(&data, out)?,
            _ if data.get("type").is_none() && data.get("message").is_some() => {
                let m = data
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                return Err(bad_response(format!("Cohere stream error: {m}")));
            }
            // content-end, tool-plan-delta, tool-call-end, citations, debug.
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.ended {
            Ok(())
        } else {
            Err(bad_response("stream ended before `message-end`"))
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
