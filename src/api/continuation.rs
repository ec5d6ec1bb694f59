//! Chat streams that survive a break: the answer so far, the request that
//! asks another target to continue it, and the continuing target's events
//! made to read as the same stream.
//!
//! Place in the pipeline: used by `routing::streams` for routes with
//! `stream_continuation` (chat completions only). [`Partial`] reads the
//! chunks a client was sent; [`continue_body`] writes the request for the
//! target that continues; [`Partial::rewrite`] turns that target's chunks
//! into chunks of the first stream (its `id`, `created` and `model`; no
//! second role chunk), and marks the finishing chunk with a `switchyard`
//! member saying the answer was continued. Pure data: must not decide when
//! to continue.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::sse::SseEvent;

/// What the target that continues is told when it cannot be prefilled.
pub const CONTINUE_INSTRUCTION: &str = "Your previous message was cut off. Continue it \
exactly where it stopped: do not repeat anything already written and do not comment on \
the interruption; begin with the very next characters.";

/// The answer a chat stream carried so far.
#[derive(Debug, Default, Clone)]
pub struct Partial {
    id: Option<Value>,
    created: Option<Value>,
    model: Option<Value>,
    text: String,
    /// Tool calls, several choices or a refusal: not continuable.
    other: bool,
    /// A finish reason was sent: the answer is whole.
    finished: bool,
    /// `[DONE]` was sent.
    done: bool,
}

/// How a continuation is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continue {
    /// The partial answer as the final assistant message, continued as it
    /// is (the provider continues a final assistant message).
    Prefill,
    /// The partial answer as an assistant message, then a user message
    /// asking to go on from where it stopped.
    Context,
}

impl Partial {
    /// Reads one event the client was sent.
    pub fn feed(&mut self, ev: &SseEvent) {
        if ev.data == "[DONE]" {
            self.done = true;
            return;
        }
        let Ok(Value::Object(chunk)) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        if self.id.is_none() {
            self.id = chunk.get("id").cloned();
            self.created = chunk.get("created").cloned();
            self.model = chunk.get("model").cloned();
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        for c in choices {
            if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                self.other = true;
            }
            if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                self.finished = true;
            }
            let Some(delta) = c.get("delta") else {
                continue;
            };
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                self.text.push_str(t);
            }
            let present = |k: &str| delta.get(k).is_some_and(|v| !v.is_null());
            if present("tool_calls") || present("function_call") || present("refusal") {
                self.other = true;
            }
        }
    }

    /// The answer's text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The answer was complete when the stream broke (its finish reason
    /// was sent): nothing to continue, only `[DONE]` to send.
    pub fn finished(&self) -> bool {
        self.finished
    }

    pub fn done(&self) -> bool {
        self.done
    }

    /// Whether another target can be asked to continue this answer: some
    /// text, one choice, no tool call, not finished.
    pub fn continuable(&self) -> bool {
        !self.text.is_empty() && !self.other && !self.finished && !self.done
    }

    /// One event of the continuing stream as an event of the first one, or
    /// `None` to drop it (the continuing target's role chunk). `marker`,
    /// when given, is added to a finishing chunk as its `switchyard`
    /// member. `trim`: the first text of the continuation loses its
    /// leading whitespace (the partial answer ended with some).
    pub fn rewrite(&self, ev: &SseEvent, marker: Option<&Value>, trim: &mut bool) -> Option<Bytes> {
        if ev.data == "[DONE]" {
            return Some(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(&ev.data) else {
            return Some(event(&ev.data));
        };
        for (k, v) in [
            ("id", &self.id),
            ("created", &self.created),
            ("model", &self.model),
        ] {
            if let Some(v) = v {
                chunk.insert(k.into(), v.clone());
            }
        }
        let mut keep = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let mut finishing = false;
        if let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) {
            for c in choices.iter_mut() {
                finishing |= c.get("finish_reason").is_some_and(|f| !f.is_null());
                let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) else {
                    keep = true;
                    continue;
                };
                delta.remove("role");
                if *trim && let Some(Value::String(t)) = delta.get_mut("content") {
                    let trimmed = t.trim_start();
                    if !trimmed.is_empty() {
                        *t = trimmed.to_string();
                        *trim = false;
                    } else {
                        t.clear();
                    }
                }
                keep |= delta.iter().any(|(_, v)| match v {
                    Value::String(s) => !s.is_empty(),
                    Value::Null => false,
                    _ => true,
                });
            }
            keep |= finishing;
        }
        if !keep {
            return None;
        }
        if finishing && let Some(m) = marker {
            chunk.insert("switchyard".into(), m.clone());
        }
        Some(event(&Value::Object(chunk).to_string()))
    }
}

/// `data` as one SSE event.
fn event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// What the finishing chunk of a continued stream carries.
pub fn marker(continued: u32, providers: &[&str]) -> Value {
    json!({"continued": continued, "providers": providers})
}

/// `body` (a chat request) asking for the continuation of `partial`: its
/// messages with the partial answer after them, as `how` says; a token
/// bound lowered by what the partial answer used (about four bytes a
/// token).
pub fn continue_body(
    body: &Map<String, Value>,
    partial: &str,
    how: Continue,
) -> Map<String, Value> {
    let mut body = body.clone();
    let assistant = match how {
        // A prefill may not end with whitespace (Anthropic refuses it).
        Continue::Prefill => partial.trim_end(),
        Continue::Context => partial,
    };
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        messages.push(json!({"role": "assistant", "content": assistant}));
        if how == Continue::Context {
            messages.push(json!({"role": "user", "content": CONTINUE_INSTRUCTION}));
        }
    }
    let used = (partial.len() as u64).div_ceil(4);
    for k in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = body.get(k).and_then(Value::as_u64) {
            body.insert(k.into(), json!(n.saturating_sub(used).max(1)));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(v: Value) -> SseEvent {
        SseEvent {
            data: v.to_string(),
            ..SseEvent::default()
        }
    }

    fn chunk(id: &str, delta: Value, finish: Value) -> SseEvent {
        ev(
            json!({"id": id, "created": 7, "model": "m-1", "object": "chat.completion.chunk",
                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    }

    #[test]
    fn reads_the_answer_so_far_and_what_makes_it_continuable() {
        let mut p = Partial::default();
        p.feed(&chunk(
            "a",
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        assert!(!p.continuable(), "no text yet");
        p.feed(&chunk("a", json!({"content": "Hello, "}), Value::Null));
        p.feed(&chunk("a", json!({"content": "wor"}), Value::Null));
        assert_eq!(p.text(), "Hello, wor");
        assert!(p.continuable());
        let mut tools = p.clone();
        tools.feed(&chunk(
            "a",
            json!({"tool_calls": [{"index": 0}]}),
            Value::Null,
        ));
        assert!(!tools.continuable());
        p.feed(&chunk("a", json!({}), json!("stop")));
        assert!(p.finished() && !p.continuable());
    }

    #[test]
    fn the_continuation_reads_as_the_first_stream_and_says_it_was_continued() {
        let mut p = Partial::default();
        p.feed(&chunk("first", json!({"content": "Hello "}), Value::Null));
        let mark = marker(1, &["p0", "p1"]);
        let mut trim = true;
        let role = chunk(
            "second",
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        );
        assert_eq!(p.rewrite(&role, Some(&mark), &mut trim), None);
        let text = chunk("second", json!({"content": " world"}), Value::Null);
        let out = p.rewrite(&text, Some(&mark), &mut trim).unwrap();
        let v: Value = serde_json::from_slice(&out[6..out.len() - 2]).unwrap();
        assert_eq!(v["id"], "first");
        assert_eq!(v["choices"][0]["delta"]["content"], "world");
        assert!(v.get("switchyard").is_none());
        let fin = chunk("second", json!({}), json!("stop"));
        let out = p.rewrite(&fin, Some(&mark), &mut trim).unwrap();
        let v: Value = serde_json::from_slice(&out[6..out.len() - 2]).unwrap();
        assert_eq!(v["switchyard"]["continued"], 1);
        assert!(
            p.rewrite(&ev(json!("x")), None, &mut trim).is_some(),
            "other events pass"
        );
    }

    #[test]
    fn continue_bodies_prefill_or_give_context_and_lower_the_token_bound() {
        let body = json!({"model": "m", "max_tokens": 100,
                          "messages": [{"role": "user", "content": "count"}]});
        let body = body.as_object().unwrap();
        let pre = continue_body(body, "one two three ", Continue::Prefill);
        assert_eq!(
            pre["messages"][1],
            json!({"role": "assistant", "content": "one two three"})
        );
        assert_eq!(pre["messages"].as_array().unwrap().len(), 2);
        assert_eq!(pre["max_tokens"], 96);
        let ctx = continue_body(body, "one two three ", Continue::Context);
        assert_eq!(ctx["messages"][2]["role"], "user");
        assert_eq!(ctx["messages"][2]["content"], CONTINUE_INSTRUCTION);
    }
}
