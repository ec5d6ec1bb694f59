//! ConverseStream events -> OpenAI `chat.completion.chunk` SSE frames.
//!
//! Place in the pipeline: the adapter decodes the response body with
//! `EventStreamDecoder`, passes every message to [`BedrockStream::on_message`]
//! and calls [`BedrockStream::finish`] at EOF. Event order on the wire:
//! `messageStart`, then per content block an optional `contentBlockStart`
//! (tool use only), `contentBlockDelta`s and `contentBlockStop`, then
//! `messageStop` (stop reason) and `metadata` (usage).
//!
//! Output: a first chunk with `delta.role`, text as `delta.content`, a tool
//! call's first chunk with `index`, `id`, `type`, `function.name` and empty
//! arguments, later argument fragments with `index` and
//! `function.arguments` only, a final chunk with an empty delta and
//! `finish_reason`, then (with `include_usage`) a `choices: []` chunk with
//! `usage`, and `data: [DONE]`. Reasoning text deltas as
//! `delta.reasoning_content` (signatures and redacted reasoning are left
//! out).
//!
//! Must not: buffer the answer, or let an `exception` / `error` frame pass
//! as content: they end the stream with BadResponse (classify them with
//! `errors::exception_class`).

use bytes::Bytes;
use serde_json::{Value, json};

use super::errors::exception_class;
use super::eventstream::EventMessage;
use super::response::{bad, finish_reason, new_id, now_secs, usage};
use crate::api::sse::{DONE, data_event};
use crate::providers::translate::TranslateError;

/// Translation state for one streamed answer.
#[derive(Debug)]
pub struct BedrockStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    /// contentBlockIndex of each tool call seen; the position is the
    /// OpenAI tool call index.
    tool_blocks: Vec<u64>,
    finish: Option<&'static str>,
    usage: Option<Value>,
}

impl BedrockStream {
    pub fn new(model: &str, include_usage: bool) -> Self {
        BedrockStream {
            id: new_id(),
            created: now_secs(),
            model: model.to_string(),
            include_usage,
            started: false,
            tool_blocks: Vec::new(),
            finish: None,
            usage: None,
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        data_event(chunk.to_string().as_bytes())
    }

    fn push_delta(&mut self, delta: Value, finish: Option<&str>, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            let role = json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }]);
            out.push(self.chunk(role, None));
        }
        if delta.as_object().is_some_and(|d| !d.is_empty()) || finish.is_some() {
            let choice = json!([{ "index": 0, "delta": delta, "finish_reason": finish }]);
            out.push(self.chunk(choice, None));
        }
    }

    /// Translates one decoded event-stream message.
    pub fn on_message(
        &mut self,
        msg: &EventMessage,
        out: &mut Vec<Bytes>,
    ) -> Result<(), TranslateError> {
        if msg.message_type() != Some("event") {
            let class = exception_class(msg)
                .ok_or_else(|| bad("event-stream message without a known :message-type"))?;
            let ty = (msg.exception_type())
                .or(msg.header_str(":error-code"))
                .unwrap_or("error");
            return Err(bad(format!("Bedrock stream {ty}: {}", class.message)));
        }
        let event_type = msg.event_type().unwrap_or("");
        let known = [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata",
        ];
        if !known.contains(&event_type) {
            return Ok(()); // newer event kinds carry nothing OpenAI can show
        }
        let payload: Value = serde_json::from_slice(msg.payload())
            .map_err(|_| bad(format!("{event_type} payload is not JSON")))?;
        match event_type {
            "messageStart" => self.push_delta(json!({}), None, out),
            "contentBlockStart" => {
                let Some(tool) = payload.pointer("/start/toolUse") else {
                    return Ok(());
                };
                let block = block_index(&payload)?;
                let id = tool.get("toolUseId").and_then(Value::as_str);
                let name = tool.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(bad("contentBlockStart toolUse without toolUseId or name"));
                };
                let index = self.tool_blocks.len();
                self.tool_blocks.push(block);
                let delta = json!({ "tool_calls": [{ "index": index, "id": id, "type": "function",
                    "function": { "name": name, "arguments": "" } }] });
                self.push_delta(delta, None, out);
            }
            "contentBlockDelta" => {
                let delta = payload
                    .get("delta")
                    .ok_or_else(|| bad("contentBlockDelta without delta"))?;
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    if !text.is_empty() {
                        self.push_delta(json!({ "content": text }), None, out);
                    }
                } else if let Some(input) = delta.pointer("/toolUse/input") {
                    let fragment = input
                        .as_str()
                        .ok_or_else(|| bad("toolUse input delta is not a string"))?;
                    let block = block_index(&payload)?;
                    let index = (self.tool_blocks.iter().position(|b| *b == block))
                        .ok_or_else(|| bad("toolUse delta for a block that never started"))?;
                    let delta = json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] });
                    self.push_delta(delta, None, out);
                } else if let Some(t) = delta
                    .pointer("/reasoningContent/text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.push_delta(json!({ "reasoning_content": t }), None, out);
                }
            }
            "messageStop" => {
                let stop = payload
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("messageStop without stopReason"))?;
                let reason = finish_reason(stop)?;
                self.finish = Some(reason);
                self.push_delta(json!({}), Some(reason), out);
            }
            "metadata" => self.usage = Some(usage(payload.get("usage"))),
            _ => {} // contentBlockStop
        }
        Ok(())
    }

    /// Call at upstream EOF: the usage chunk (with `include_usage`) and
    /// `[DONE]`, or BadResponse when `messageStop` or `metadata` never came.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.finish.is_none() {
            return Err(bad("ConverseStream ended before messageStop"));
        }
        let Some(usage) = self.usage.take() else {
            return Err(bad("ConverseStream ended before its metadata event"));
        };
        if self.include_usage {
            out.push(self.chunk(json!([]), Some(usage)));
        }
        out.push(Bytes::from_static(DONE));
        Ok(())
    }
}

fn block_index(payload: &Value) -> Result<u64, TranslateError> {
    payload
        .get("contentBlockIndex")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("content block event without contentBlockIndex"))
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
