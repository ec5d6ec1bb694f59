//! Anthropic Messages SSE events -> OpenAI `chat.completion.chunk` frames.
//!
//! Place in the pipeline: the provider decodes the upstream body with
//! [`crate::api::sse::SseDecoder`] and hands every event to
//! [`AnthropicStream::on_event`], then calls [`AnthropicStream::finish`] at
//! upstream EOF. Expected order: `message_start`, then per content block
//! `content_block_start` / `content_block_delta`* / `content_block_stop`,
//! then `message_delta` (stop_reason, cumulative usage) and `message_stop`;
//! `ping` may come anywhere. Mapping: `message_start` -> the role chunk;
//! `text_delta` -> `delta.content`; a `tool_use` block -> one tool call whose
//! OpenAI `index` counts tool_use blocks only (not the block index), its
//! `input_json_delta` fragments -> `function.arguments` fragments (a tool
//! block that streamed no input gets `"{}"`); `message_delta` -> the final
//! chunk with `finish_reason`; `finish` -> the usage chunk (when asked) and
//! `[DONE]`. A thinking block's `thinking_delta`s -> `delta.reasoning_content`
//! (the field OpenAI-compatible servers use; sent only when the request
//! asked for thinking); redacted thinking, `signature_delta` and
//! `citations_delta` are dropped (OpenAI chat has no field for them), as are
//! unknown event types (Anthropic may add new ones). An `error` event ends the
//! translation with `BadResponse`; [`AnthropicStream::upstream_error`] then
//! tells how to classify it. Must not buffer the whole answer or emit
//! anything after `[DONE]`.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Value, json};

use super::error::classify_error_type;
use super::events::{Delta, Event, StartBlock};
use super::response::{Usage, finish_reason, now};
use crate::api::sse::{DONE, SseEvent, data_event};
use crate::providers::Classification;
use crate::providers::translate::TranslateError;

#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    Tool { index: usize, has_args: bool },
    Ignored,
}

/// Translation state for one streamed answer.
#[derive(Debug)]
pub struct AnthropicStream {
    model: String,
    include_usage: bool,
    created: u64,
    /// The message id, set by `message_start`.
    id: Option<String>,
    blocks: HashMap<u64, Block>,
    tool_calls: usize,
    usage: Usage,
    finish_sent: bool,
    stopped: bool,
    done: bool,
    error: Option<Classification>,
}

fn bad(message: &str) -> TranslateError {
    TranslateError::BadResponse(message.to_string())
}

impl AnthropicStream {
    pub fn new(model: &str, include_usage: bool) -> Self {
        AnthropicStream {
            model: model.to_string(),
            include_usage,
            created: now(),
            id: None,
            blocks: HashMap::new(),
            tool_calls: 0,
            usage: Usage::default(),
            finish_sent: false,
            stopped: false,
            done: false,
            error: None,
        }
    }

    /// After `on_event` failed on an in-stream `error` event: how to treat it
    /// (e.g. `overloaded_error` is retryable and moves on).
    pub fn upstream_error(&self) -> Option<&Classification> {
        self.error.as_ref()
    }

    fn frame(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let mut chunk = json!({
            "id": self.id.as_deref().unwrap_or_default(),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if self.include_usage
            && let Some(c) = chunk.as_object_mut()
        {
            c.insert("usage".into(), Value::Null);
        }
        data_event(chunk.to_string().as_bytes())
    }

    fn tool_frame(&self, call: Value) -> Bytes {
        self.frame(json!({"tool_calls": [call]}), None)
    }

    /// Translates one upstream event, appending finished OpenAI frames to `out`.
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.done || self.error.is_some() {
            return Err(bad("event after the stream ended"));
        }
        if self.stopped {
            // Nothing may follow message_stop; tolerate stray pings and such.
            return Ok(());
        }
        let event: Event = serde_json::from_str(&ev.data)
            .map_err(|_| bad("stream event data is not a known event object"))?;
        if self.id.is_none()
            && !matches!(
                event,
                Event::MessageStart { .. } | Event::Ping | Event::Error { .. } | Event::Unknown
            )
        {
            return Err(bad("stream event before message_start"));
        }
        match event {
            Event::MessageStart { message } => {
                if self.id.is_some() {
                    return Err(bad("a second message_start"));
                }
                self.id = Some(message.id);
                self.usage = message.usage;
                out.push(self.frame(json!({"role": "assistant", "content": ""}), None));
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => {
                let block = match content_block {
                    StartBlock::Text { text } => {
                        if !text.is_empty() {
                            out.push(self.frame(json!({"content": text}), None));
                        }
                        Block::Text
                    }
                    StartBlock::ToolUse { id, name, input } => {
                        let index = self.tool_calls;
                        self.tool_calls += 1;
                        // Input normally streams as fragments; an initial
                        // non-empty object is sent whole.
                        let initial = match &input {
                            Value::Object(o) if !o.is_empty() => input.to_string(),
                            _ => String::new(),
                        };
                        let has_args = !initial.is_empty();
                        out.push(self.tool_frame(json!({
                            "index": index, "id": id, "type": "function",
                            "function": {"name": name, "arguments": initial},
                        })));
                        Block::Tool { index, has_args }
                    }
                    StartBlock::Thinking { thinking } => {
                        if !thinking.is_empty() {
                            out.push(self.frame(json!({"reasoning_content": thinking}), None));
                        }
                        Block::Thinking
                    }
                    StartBlock::Other => Block::Ignored,
                };
                if self.blocks.insert(index, block).is_some() {
                    return Err(bad("content_block_start for an index already started"));
                }
            }
            Event::ContentBlockDelta { index, delta } => {
                let block = self
                    .blocks
                    .get_mut(&index)
                    .ok_or_else(|| bad("content_block_delta for a block never started"))?;
                match (block, delta) {
                    (_, Delta::Other) | (Block::Ignored, _) => {}
                    (Block::Text, Delta::Text { text }) => {
                        if !text.is_empty() {
                            out.push(self.frame(json!({"content": text}), None));
                        }
                    }
                    (Block::Thinking, Delta::Thinking { thinking }) => {
                        if !thinking.is_empty() {
                            out.push(self.frame(json!({"reasoning_content": thinking}), None));
                        }
                    }
                    (Block::Tool { index, has_args }, Delta::InputJson { partial_json }) => {
                        if !partial_json.is_empty() {
                            *has_args = true;
                            let index = *index;
                            out.push(self.tool_frame(json!({
                                "index": index, "function": {"arguments": partial_json},
                            })));
                        }
                    }
                    _ => return Err(bad("content_block_delta does not match its block type")),
                }
            }
            Event::ContentBlockStop { index } => match self.blocks.get(&index) {
                None => return Err(bad("content_block_stop for a block never started")),
                Some(Block::Tool {
                    index,
                    has_args: false,
                }) => {
                    let index = *index;
                    out.push(
                        self.tool_frame(json!({"index": index, "function": {"arguments": "{}"}})),
                    );
                }
                Some(_) => {}
            },
            Event::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.output_tokens = u.output_tokens.unwrap_or(self.usage.output_tokens);
                    self.usage.input_tokens = u.input_tokens.unwrap_or(self.usage.input_tokens);
                    if u.cache_creation_input_tokens.is_some() {
                        self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens;
                    }
                    if u.cache_read_input_tokens.is_some() {
                        self.usage.cache_read_input_tokens = u.cache_read_input_tokens;
                    }
                }
                if let Some(reason) = delta.stop_reason
                    && !self.finish_sent
                {
                    self.finish_sent = true;
                    out.push(self.frame(json!({}), Some(finish_reason(&reason))));
                }
            }
            Event::MessageStop => {
                if !self.finish_sent {
                    return Err(bad("message_stop without a stop_reason"));
                }
                self.stopped = true;
            }
            Event::Ping | Event::Unknown => {}
            Event::Error { error } => {
                let class = classify_error_type(&error.kind, &error.message);
                let message = format!(
                    "upstream stream error ({}): {}",
                    class.openai_type, class.message
                );
                self.error = Some(class);
                return Err(TranslateError::BadResponse(message));
            }
        }
        Ok(())
    }

    /// Called at upstream EOF: the usage chunk (when asked) and `[DONE]`, or
    /// `BadResponse` if the upstream never sent `message_stop`. Idempotent.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        if self.error.is_some() {
            return Err(bad("the upstream stream ended with an error event"));
        }
        if !self.stopped {
            return Err(bad("the upstream stream ended before message_stop"));
        }
        if self.include_usage {
            let chunk = json!({
                "id": self.id.as_deref().unwrap_or_default(),
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage.to_openai(),
            });
            out.push(data_event(chunk.to_string().as_bytes()));
        }
        out.push(Bytes::from_static(DONE));
        self.done = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
