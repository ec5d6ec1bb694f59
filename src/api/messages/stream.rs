//! OpenAI chat chunks -> Messages stream events, for targets that do not
//! speak Messages natively.
//!
//! Place in the pipeline: `routing` feeds it the decoded SSE events of a
//! chat stream and sends on what it writes: `message_start`, `ping`, per
//! content block `content_block_start`, `content_block_delta` (`text_delta`
//! or `input_json_delta`) and `content_block_stop`, then `message_delta`
//! (stop_reason, usage) and `message_stop`, in Anthropic's order. The
//! target's reasoning (`delta.reasoning_content` or `delta.reasoning`, when
//! the client asked for thinking: `thinking_delta`), text and each tool call
//! are blocks of their own, opened when their first delta arrives and
//! closed when another block starts or the stream ends. Must not do I/O; a
//! chat stream that ends without `[DONE]` or a finish reason is an error,
//! not a silently complete message.

use bytes::Bytes;
use serde_json::{Value, json};

use super::MessagesError;
use super::response::{message_id, reasoning_text, stop_reason, usage_of};
use crate::api::sse::{SseEvent, named_event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Thinking,
    Text,
    /// A tool call, by its index in the chat stream.
    Tool(u64),
}

/// The translation state of one stream.
#[derive(Debug)]
pub struct ChatToMessages {
    model: String,
    /// The client asked for thinking blocks.
    thinking: bool,
    started: bool,
    open: Option<Open>,
    /// Index of the next content block.
    next: u64,
    stop: Option<&'static str>,
    input_tokens: u64,
    output_tokens: u64,
    /// Prompt tokens the provider served from its cache.
    cached_tokens: u64,
    /// Prompt tokens the provider wrote to its cache.
    written_tokens: u64,
    done: bool,
}

fn emit(out: &mut Vec<Bytes>, event: &str, payload: Value) {
    out.push(named_event(event, payload.to_string().as_bytes()));
}

impl ChatToMessages {
    /// `thinking`: the client asked for thinking blocks.
    pub fn new(model: &str, thinking: bool) -> Self {
        ChatToMessages {
            model: model.to_string(),
            thinking,
            started: false,
            open: None,
            next: 0,
            stop: None,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            written_tokens: 0,
            done: false,
        }
    }

    fn start(&mut self, id: &str, model: Option<&str>, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        emit(
            out,
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant",
                "model": model.unwrap_or(&self.model), "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        );
        emit(out, "ping", json!({"type": "ping"}));
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if self.open.take().is_some() {
            emit(
                out,
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.next - 1}),
            );
        }
    }

    fn open(&mut self, kind: Open, block: Value, out: &mut Vec<Bytes>) {
        self.close(out);
        emit(
            out,
            "content_block_start",
            json!({"type": "content_block_start", "index": self.next, "content_block": block}),
        );
        self.open = Some(kind);
        self.next += 1;
    }

    fn delta(&self, delta: Value, out: &mut Vec<Bytes>) {
        emit(
            out,
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.next - 1, "delta": delta}),
        );
    }

    /// One event of the chat stream.
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), MessagesError> {
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if ev.data.trim().is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(&ev.data)
            .map_err(|_| MessagesError::BadAnswer("a chunk that is not JSON".into()))?;
        if let Some(e) = chunk.get("error") {
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("stream failed");
            return Err(MessagesError::BadAnswer(message.to_string()));
        }
        let id = chunk
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("switchyard");
        self.start(id, chunk.get("model").and_then(Value::as_str), out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.input_tokens = n("prompt_tokens");
            self.output_tokens = n("completion_tokens");
            let detail = |k: &str| {
                u.get("prompt_tokens_details")
                    .and_then(|d| d.get(k))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            self.cached_tokens = detail("cached_tokens");
            self.written_tokens = detail("cache_write_tokens");
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Ok(());
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if self.thinking
            && let Some(t) = reasoning_text(delta)
        {
            if self.open != Some(Open::Thinking) {
                let block = json!({"type": "thinking", "thinking": "", "signature": ""});
                self.open(Open::Thinking, block, out);
            }
            self.delta(json!({"type": "thinking_delta", "thinking": t}), out);
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            if self.open != Some(Open::Text) {
                self.open(Open::Text, json!({"type": "text", "text": ""}), out);
            }
            self.delta(json!({"type": "text_delta", "text": text}), out);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let f = call.get("function").unwrap_or(&Value::Null);
            if self.open != Some(Open::Tool(index)) {
                let block = json!({
                    "type": "tool_use",
                    "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
                    "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
                    "input": {},
                });
                self.open(Open::Tool(index), block, out);
            }
            if let Some(args) = f.get("arguments").and_then(Value::as_str)
                && !args.is_empty()
            {
                self.delta(
                    json!({"type": "input_json_delta", "partial_json": args}),
                    out,
                );
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = Some(stop_reason(f));
        }
        Ok(())
    }

    /// At the end of the chat stream: the closing events.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), MessagesError> {
        if !self.done && self.stop.is_none() {
            return Err(MessagesError::BadAnswer(
                "the chat stream ended before it finished".into(),
            ));
        }
        self.start("switchyard", None, out);
        self.close(out);
        emit(
            out,
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
                   "usage": usage_of(self.input_tokens, self.output_tokens,
                                     self.cached_tokens, self.written_tokens)}),
        );
        emit(out, "message_stop", json!({"type": "message_stop"}));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sse::SseDecoder;

    fn run(chunks: &[Value]) -> Vec<(String, Value)> {
        let mut t = ChatToMessages::new("r", true);
        let mut out = Vec::new();
        for c in chunks {
            let ev = SseEvent {
                data: c.to_string(),
                ..Default::default()
            };
            t.on_event(&ev, &mut out).unwrap();
        }
        t.on_event(
            &SseEvent {
                data: "[DONE]".into(),
                ..Default::default()
            },
            &mut out,
        )
        .unwrap();
        t.finish(&mut out).unwrap();
        let mut dec = SseDecoder::new();
        out.iter()
            .flat_map(|b| dec.decode(b))
            .map(|e| (e.event, serde_json::from_str(&e.data).unwrap()))
            .collect()
    }

    #[test]
    fn text_then_tool_call_become_two_blocks_in_order() {
        let c = |delta: Value, finish: Value| json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let events = run(&[
            c(json!({"role": "assistant", "content": ""}), Value::Null),
            c(json!({"content": "Hel"}), Value::Null),
            c(json!({"content": "lo"}), Value::Null),
            c(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}),
                Value::Null,
            ),
            c(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                Value::Null,
            ),
            c(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                Value::Null,
            ),
            c(json!({}), json!("tool_calls")),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}}),
        ]);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["id"], "msg_c1");
        assert_eq!(
            events[3].1["delta"],
            json!({"type": "text_delta", "text": "Hel"})
        );
        assert_eq!(
            events[6].1,
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "call_1", "name": "get", "input": {}}})
        );
        assert_eq!(
            events[8].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "1}"})
        );
        assert_eq!(events[10].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(
            events[10].1["usage"],
            json!({"input_tokens": 5, "output_tokens": 9})
        );
    }

    #[test]
    fn reasoning_streams_as_a_thinking_block_before_the_text() {
        let c = |delta: Value| json!({"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
        let events = run(&[
            c(json!({"role": "assistant", "reasoning_content": "hmm "})),
            c(json!({"reasoning_content": "ok"})),
            c(json!({"content": "42"})),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ]);
        let blocks: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| &d["content_block"])
            .collect();
        assert_eq!(blocks[0]["type"], "thinking");
        assert_eq!(blocks[1]["type"], "text");
        let thought: String = events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "thinking_delta")
            .map(|(_, d)| d["delta"]["thinking"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(thought, "hmm ok");
        let mut quiet = ChatToMessages::new("r", false);
        let mut out = Vec::new();
        let ev = SseEvent {
            data: c(json!({"reasoning_content": "secret"})).to_string(),
            ..Default::default()
        };
        quiet.on_event(&ev, &mut out).unwrap();
        assert!(
            out.iter()
                .all(|b| !String::from_utf8_lossy(b).contains("thinking"))
        );
    }

    #[test]
    fn a_stream_cut_short_is_an_error() {
        let mut t = ChatToMessages::new("r", false);
        let mut out = Vec::new();
        let ev = SseEvent {
            data: json!({"choices": [{"delta": {"content": "x"}}]}).to_string(),
            ..Default::default()
        };
        t.on_event(&ev, &mut out).unwrap();
        assert!(t.finish(&mut out).is_err());
    }
}
