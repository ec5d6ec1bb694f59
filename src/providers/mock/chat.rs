//! The mock's chat answers: text, tool calls and structured outputs, whole
//! or as OpenAI-shaped chunks.
//!
//! Place in the pipeline: called by the `mock` provider per chat attempt.
//! Honours `n`, `max_tokens`/`max_completion_tokens` (the text cut to that
//! many words, `finish_reason: "length"`), `stream_options.include_usage`,
//! `tools` with `tool_choice` (function and custom tools; which one is
//! called, and with what, is `tools.rs`), `response_format` (`json_schema`,
//! `json_object`), and reasoning (a chat client's `reasoning_effort` or a
//! translated request's): a `reasoning_content` before the answer.
//! Deterministic apart from ids; must not do I/O.

use bytes::Bytes;
use serde_json::{Map, Value, json};

pub(super) use crate::api::chat::include_usage;

use super::schema::example;
use super::tools::{Kind, ToolCall, last_tool_result, tool_to_call};
use super::{last_user_text, usage, word_count};

/// What one chat call answers, before it is shaped as a body or chunks.
pub(super) struct Answer {
    /// What the mock "reasons" first, when reasoning was asked for.
    pub reasoning: Option<String>,
    pub content: Option<String>,
    /// The tool the answer calls.
    pub tool_call: Option<ToolCall>,
    pub finish: &'static str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Decides the answer of provider `name` to the chat `body`; `reasoning`:
/// reasoning was asked for.
pub(super) fn answer(name: &str, body: &Map<String, Value>, reasoning: bool) -> Answer {
    let prompt = last_user_text(body);
    let reasoning = reasoning.then(|| format!("[{name}] reasons about: {prompt}"));
    let prompt_tokens = word_count(&prompt) as u64;
    let mut finish = "stop";
    let (content, tool_call) = if let Some(call) = tool_to_call(body, &prompt) {
        finish = "tool_calls";
        (None, Some(call))
    } else if let Some(json) = structured(body, name, &prompt) {
        (Some(json), None)
    } else {
        let text = match last_tool_result(body) {
            Some(result) => format!("[{name}] The tool said: {result}"),
            None => format!("[{name}] You said: {prompt}"),
        };
        let limit = body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_u64);
        let (text, cut) = truncate(&text, limit);
        if cut {
            finish = "length";
        }
        (Some(text), None)
    };
    let completion_tokens = content
        .as_deref()
        .or(tool_call.as_ref().map(|c| c.input.as_str()))
        .map_or(1, word_count) as u64
        + reasoning.as_deref().map_or(0, word_count) as u64;
    Answer {
        reasoning,
        content,
        tool_call,
        finish,
        prompt_tokens,
        completion_tokens,
    }
}

/// `text` cut to its first `limit` words (runs of non-spaces, a leading
/// space kept); whether it was cut.
pub(super) fn truncate(text: &str, limit: Option<u64>) -> (String, bool) {
    let Some(limit) = limit else {
        return (text.to_string(), false);
    };
    let (mut words, mut in_word) = (0u64, false);
    for (i, c) in text.char_indices() {
        if c == ' ' {
            in_word = false;
        } else if !in_word {
            if words == limit {
                return (text[..i].trim_end().to_string(), true);
            }
            in_word = true;
            words += 1;
        }
    }
    (text.to_string(), false)
}

/// The number of choices asked for (`n`, 1..=16).
pub(super) fn choices(body: &Map<String, Value>) -> usize {
    body.get("n")
        .and_then(Value::as_u64)
        .map_or(1, |n| n.clamp(1, 16) as usize)
}

/// JSON text for a `response_format` of `json_schema` or `json_object`.
fn structured(body: &Map<String, Value>, name: &str, prompt: &str) -> Option<String> {
    let format = body.get("response_format")?;
    match format.get("type").and_then(Value::as_str)? {
        "json_schema" => {
            let schema = format.get("json_schema")?.get("schema")?;
            Some(example(schema).to_string())
        }
        "json_object" => Some(json!({"provider": name, "answer": prompt}).to_string()),
        _ => None,
    }
}

/// A whole `chat.completion` body with `n` identical choices.
pub(super) fn full(a: &Answer, id: &str, created: u64, model: &str, n: usize) -> Bytes {
    let message = match &a.tool_call {
        Some(call) => json!({"role": "assistant", "content": null, "refusal": null,
            "tool_calls": [tool_call_json(call, &call.input)]}),
        None => json!({"role": "assistant", "content": a.content, "refusal": null}),
    };
    let mut message = message;
    if let Some(r) = &a.reasoning {
        message["reasoning_content"] = Value::String(r.clone());
    }
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            json!({"index": i, "message": message, "logprobs": null,
                        "finish_reason": a.finish})
        })
        .collect();
    let reply = json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": choices,
        "usage": usage(a.prompt_tokens, a.completion_tokens * n as u64),
    });
    Bytes::from(reply.to_string())
}

/// The answer as `chat.completion.chunk` events, `[DONE]` last. Tool
/// calls go as OpenAI does: a first chunk with the id, type and name and
/// empty arguments, then argument fragments.
pub(super) fn chunks(
    a: &Answer,
    id: &str,
    created: u64,
    model: &str,
    n: usize,
    with_usage: bool,
) -> Vec<Bytes> {
    let event = |choices: Value, usage_value: Option<Value>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": null, "choices": choices});
        if with_usage {
            c["usage"] = usage_value.unwrap_or(Value::Null);
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let delta = |i: usize, delta: Value, finish: Value| {
        event(
            json!([{"index": i, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            None,
        )
    };
    let mut out = Vec::new();
    for i in 0..n {
        if let Some(r) = &a.reasoning {
            for piece in words(r) {
                out.push(delta(i, json!({"reasoning_content": piece}), Value::Null));
            }
        }
        match (&a.tool_call, &a.content) {
            (Some(call), _) => {
                let mut first = tool_call_json(call, "");
                first["index"] = json!(0);
                out.push(delta(
                    i,
                    json!({"role": "assistant", "content": null, "tool_calls": [first]}),
                    Value::Null,
                ));
                for piece in fragments(&call.input) {
                    let part = match call.kind {
                        Kind::Function => json!({"index": 0, "function": {"arguments": piece}}),
                        Kind::Custom => json!({"index": 0, "custom": {"input": piece}}),
                    };
                    out.push(delta(i, json!({"tool_calls": [part]}), Value::Null));
                }
            }
            (None, content) => {
                out.push(delta(
                    i,
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                ));
                for piece in words(content.as_deref().unwrap_or("")) {
                    out.push(delta(i, json!({"content": piece}), Value::Null));
                }
            }
        }
        out.push(delta(i, json!({}), json!(a.finish)));
    }
    if with_usage {
        let total = usage(a.prompt_tokens, a.completion_tokens * n as u64);
        out.push(event(json!([]), Some(total)));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// `text` as word pieces, each but the first with its leading space.
pub(super) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(' ').enumerate().map(|(i, w)| {
        if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        }
    })
}

/// A chat tool call with `input` as its arguments (or custom input).
fn tool_call_json(call: &ToolCall, input: &str) -> Value {
    match call.kind {
        Kind::Function => json!({"id": call_id(&call.name), "type": "function",
            "function": {"name": call.name, "arguments": input}}),
        Kind::Custom => json!({"id": call_id(&call.name), "type": "custom",
            "custom": {"name": call.name, "input": input}}),
    }
}

/// JSON argument text in fragments of a few characters.
fn fragments(args: &str) -> Vec<String> {
    let chars: Vec<char> = args.chars().collect();
    chars.chunks(8).map(|c| c.iter().collect()).collect()
}

/// A stable tool-call id for `name`.
fn call_id(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("call_mock_{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_counts_words_not_spaces() {
        assert_eq!(truncate(" a b  c", Some(2)), (" a b".to_string(), true));
        assert_eq!(truncate("a b", Some(2)), ("a b".to_string(), false));
        assert_eq!(truncate("a b", Some(0)), (String::new(), true));
        assert_eq!(truncate("a b", None), ("a b".to_string(), false));
    }
}
