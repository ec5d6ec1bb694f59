//! Chat completion stream -> Responses API event stream.
//!
//! Place in the pipeline: `routing` feeds a translated target's chat SSE
//! bytes (whole events) through [`ChatToResponses::feed`] and calls
//! [`ChatToResponses::finish`] when the chat stream ends. Emits the
//! documented sequence, each event with its `sequence_number`:
//! `response.created`, `response.in_progress`, then, when the client asked
//! for reasoning and the target streams some (`delta.reasoning_content` or
//! `delta.reasoning`), a reasoning item: `response.output_item.added`,
//! (`response.reasoning_summary_part.added`,
//! `response.reasoning_summary_text.delta`... when a summary was asked)
//! `response.reasoning_text.delta`..., their `.done` events and
//! `response.output_item.done`; per message
//! `response.output_item.added`, `response.content_part.added`,
//! `response.output_text.delta`..., `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`; per function
//! call `response.output_item.added`,
//! `response.function_call_arguments.delta`..., `.done`,
//! `response.output_item.done` (for a free-form tool a `custom_tool_call`
//! item, its input in one `response.custom_tool_call_input.delta` and
//! `.done` once the call's arguments are whole); and last `response.completed` (or
//! `response.incomplete`) with the whole response and its usage. Pure: no
//! I/O, and it must not emit a torn event.

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use super::response::{
    Call, Head, call_item, message_item, output_text, reasoning_item, response_object, usage,
};
use super::tools::custom_input;
use super::{Echo, ResponsesError, new_id};
use crate::api::messages::response::reasoning_text;
use crate::api::sse::{SseDecoder, named_event};

/// An open message item.
#[derive(Debug)]
struct Message {
    index: usize,
    id: String,
    text: String,
}

/// The translation state of one stream.
#[derive(Debug)]
pub struct ChatToResponses {
    echo: Echo,
    head: Option<Head>,
    created_at: u64,
    seq: u64,
    decoder: SseDecoder,
    /// Finished output items, by output index.
    done_items: Vec<(usize, Value)>,
    message: Option<Message>,
    /// An open reasoning item.
    reasoning: Option<Message>,
    /// The client asked for reasoning, and for a summary of it.
    show_reasoning: bool,
    summary: bool,
    /// Open calls: chat tool-call index, output index, the call.
    calls: Vec<(u64, usize, Call)>,
    next_index: usize,
    usage: Value,
    finish: Option<String>,
    finished: bool,
}

impl ChatToResponses {
    /// `created_at`: seconds since the epoch, used when chunks carry none.
    pub fn new(echo: Echo, created_at: u64) -> Self {
        ChatToResponses {
            show_reasoning: echo.wants_reasoning(),
            summary: echo.wants_summary(),
            reasoning: None,
            echo,
            head: None,
            created_at,
            seq: 0,
            decoder: SseDecoder::new(),
            done_items: Vec::new(),
            message: None,
            calls: Vec::new(),
            next_index: 0,
            usage: Value::Null,
            finish: None,
            finished: false,
        }
    }

    fn emit(&mut self, out: &mut BytesMut, kind: &str, mut event: Value) {
        event["type"] = Value::String(kind.into());
        event["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.extend_from_slice(&named_event(kind, event.to_string().as_bytes()));
    }

    /// Emits `response.created` and `response.in_progress` once.
    fn start(&mut self, out: &mut BytesMut, model: &str, created: Option<u64>) {
        if self.head.is_some() {
            return;
        }
        let head = Head::new(model, created.unwrap_or(self.created_at));
        let obj = response_object(&head, &self.echo, "in_progress", vec![], Value::Null, None);
        self.head = Some(head);
        self.emit(out, "response.created", json!({"response": obj}));
        self.emit(out, "response.in_progress", json!({"response": obj}));
    }

    /// Translates the chat events completed by `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, ResponsesError> {
        let mut out = BytesMut::new();
        for event in self.decoder.decode(chunk) {
            if self.finished {
                break;
            }
            if event.data == "[DONE]" {
                self.close(&mut out);
                break;
            }
            let v: Value = serde_json::from_str(&event.data)
                .map_err(|_| ResponsesError::BadAnswer("a chat stream event is not JSON".into()))?;
            self.chunk(&mut out, &v);
        }
        Ok(out.freeze())
    }

    /// The closing events when the chat stream ended (nothing if `[DONE]`
    /// already closed it).
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        self.close(&mut out);
        out.freeze()
    }

    fn chunk(&mut self, out: &mut BytesMut, v: &Value) {
        let model = v.get("model").and_then(Value::as_str).unwrap_or_default();
        self.start(out, model, v.get("created").and_then(Value::as_u64));
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(Some(u));
        }
        let Some(choice) = v.pointer("/choices/0") else {
            return;
        };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if self.show_reasoning
            && let Some(thought) = reasoning_text(delta)
        {
            self.thought(out, thought);
        }
        let text = delta
            .get("content")
            .and_then(Value::as_str)
            .or_else(|| delta.get("refusal").and_then(Value::as_str))
            .unwrap_or_default();
        if !text.is_empty() {
            self.text(out, text);
        }
        for tc in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool_call(out, tc);
        }
    }

    fn thought(&mut self, out: &mut BytesMut, text: &str) {
        if self.reasoning.is_none() {
            let r = Message {
                index: self.next_index,
                id: new_id("rs"),
                text: String::new(),
            };
            self.next_index += 1;
            let item = json!({"type": "reasoning", "id": r.id, "status": "in_progress",
                              "summary": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": r.index, "item": item}),
            );
            if self.summary {
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": r.id, "output_index": r.index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": ""}}),
                );
            }
            self.reasoning = Some(r);
        }
        let Some(r) = self.reasoning.as_mut() else {
            return;
        };
        r.text.push_str(text);
        let (id, index) = (r.id.clone(), r.index);
        if self.summary {
            let event = json!({"item_id": id, "output_index": index, "summary_index": 0,
                               "delta": text});
            self.emit(out, "response.reasoning_summary_text.delta", event);
        }
        let event = json!({"item_id": id, "output_index": index, "content_index": 0,
                           "delta": text});
        self.emit(out, "response.reasoning_text.delta", event);
    }

    fn close_reasoning(&mut self, out: &mut BytesMut) {
        let Some(r) = self.reasoning.take() else {
            return;
        };
        let (id, index) = (&r.id, r.index);
        self.emit(
            out,
            "response.reasoning_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "text": r.text}),
        );
        if self.summary {
            self.emit(
                out,
                "response.reasoning_summary_text.done",
                json!({"item_id": id, "output_index": index, "summary_index": 0,
                       "text": r.text}),
            );
            self.emit(
                out,
                "response.reasoning_summary_part.done",
                json!({"item_id": id, "output_index": index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": r.text}}),
            );
        }
        let item = reasoning_item(id, &r.text, self.summary, "completed");
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.done_items.push((index, item));
    }

    fn text(&mut self, out: &mut BytesMut, text: &str) {
        self.close_reasoning(out);
        if self.message.is_none() {
            let m = Message {
                index: self.next_index,
                id: new_id("msg"),
                text: String::new(),
            };
            self.next_index += 1;
            let item = json!({"type": "message", "id": m.id, "status": "in_progress",
                              "role": "assistant", "content": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": m.index, "item": item}),
            );
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": m.id, "output_index": m.index, "content_index": 0,
                       "part": output_text("")}),
            );
            self.message = Some(m);
        }
        let Some(m) = self.message.as_mut() else {
            return;
        };
        m.text.push_str(text);
        let event = json!({"item_id": m.id, "output_index": m.index, "content_index": 0,
                           "delta": text, "logprobs": []});
        self.emit(out, "response.output_text.delta", event);
    }

    fn tool_call(&mut self, out: &mut BytesMut, tc: &Value) {
        let index = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
        let s = |p: &str| tc.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let pos = match self.calls.iter().position(|(i, _, _)| *i == index) {
            Some(pos) => pos,
            None => {
                // Text before a call is finished: the call comes after it.
                self.close_reasoning(out);
                self.close_message(out);
                let call = Call::of(&self.echo, s("/id"), s("/function/name"), String::new());
                let at = self.next_index;
                self.next_index += 1;
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": at, "item": call_item(&call, "in_progress")}),
                );
                self.calls.push((index, at, call));
                self.calls.len() - 1
            }
        };
        let args = s("/function/arguments");
        if args.is_empty() {
            return;
        }
        let (_, at, call) = &mut self.calls[pos];
        call.arguments.push_str(args);
        if call.custom {
            // A custom tool's input is known once its JSON arguments are.
            return;
        }
        let event = json!({"item_id": call.id, "output_index": *at, "delta": args});
        self.emit(out, "response.function_call_arguments.delta", event);
    }

    fn close_message(&mut self, out: &mut BytesMut) {
        let Some(m) = self.message.take() else {
            return;
        };
        let (id, index) = (&m.id, m.index);
        self.emit(
            out,
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "text": m.text, "logprobs": []}),
        );
        self.emit(
            out,
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": output_text(&m.text)}),
        );
        let item = message_item(id, &m.text, "completed");
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.done_items.push((index, item));
    }

    fn close(&mut self, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        self.start(out, "", None);
        self.close_reasoning(out);
        self.close_message(out);
        for (_, at, call) in std::mem::take(&mut self.calls) {
            if call.custom {
                let input = custom_input(&call.arguments);
                let (id, at) = (&call.id, at);
                self.emit(
                    out,
                    "response.custom_tool_call_input.delta",
                    json!({"item_id": id, "output_index": at, "delta": input}),
                );
                self.emit(
                    out,
                    "response.custom_tool_call_input.done",
                    json!({"item_id": id, "output_index": at, "input": input}),
                );
            } else {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": call.id, "output_index": at, "name": call.name,
                           "arguments": call.arguments}),
                );
            }
            let item = call_item(&call, "completed");
            self.emit(
                out,
                "response.output_item.done",
                json!({"output_index": at, "item": item}),
            );
            self.done_items.push((at, item));
        }
        self.done_items.sort_by_key(|(i, _)| *i);
        let output = self.done_items.drain(..).map(|(_, v)| v).collect();
        let Some(head) = self.head.as_ref() else {
            return;
        };
        let finish = self.finish.as_deref();
        let usage = std::mem::take(&mut self.usage);
        let obj = response_object(head, &self.echo, "completed", output, usage, finish);
        let kind = if obj["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.finished = true;
        self.emit(out, kind, json!({"response": obj}));
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
