//! The mock's legacy text completions (`/completions`, passed through).
//!
//! Place in the pipeline: called by the `mock` provider's `passthrough` for
//! `/completions`. Answers a `text_completion` (or its chunks ending in
//! `data: [DONE]`) with one choice per prompt and `n`, the text cut to
//! `max_tokens` words (16 when absent, as OpenAI; `finish_reason:
//! "length"`), the prompt in front with `echo`, and a usage chunk with
//! `stream_options.include_usage`. Deterministic apart from ids; must not
//! do I/O.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::chat::{choices, include_usage, truncate, words};
use super::{usage, word_count};

/// OpenAI's default `max_tokens` for text completions.
const DEFAULT_MAX_TOKENS: u64 = 16;

struct Choice {
    text: String,
    finish: &'static str,
}

/// The prompts of a request: a string, strings, tokens or token arrays.
fn prompts(body: &Map<String, Value>) -> Vec<String> {
    match body.get("prompt") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![format!("{} tokens", items.len())]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                Value::Array(t) => format!("{} tokens", t.len()),
                other => other.to_string(),
            })
            .collect(),
        // `null` (the reference's default): a new document's start.
        _ => vec!["<|endoftext|>".to_string()],
    }
}

/// The whole body or events answering `body` for provider `name`.
pub(super) fn answer(
    name: &str,
    body: &Map<String, Value>,
    id: &str,
    created: u64,
    stream: bool,
) -> Vec<Bytes> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let n = choices(body);
    let limit = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let echo = body.get("echo").and_then(Value::as_bool).unwrap_or(false);
    let prompts = prompts(body);
    let mut prompt_tokens = 0u64;
    let mut completion_tokens = 0u64;
    let mut all = Vec::new();
    for prompt in &prompts {
        prompt_tokens += word_count(prompt) as u64;
        let (text, cut) = truncate(&format!(" [{name}] completes: {prompt}"), Some(limit));
        completion_tokens += word_count(&text) as u64 * n as u64;
        let text = if echo {
            format!("{prompt}{text}")
        } else {
            text
        };
        for _ in 0..n {
            all.push(Choice {
                text: text.clone(),
                finish: if cut { "length" } else { "stop" },
            });
        }
    }
    let total = usage(prompt_tokens, completion_tokens);
    if !stream {
        let choices: Vec<Value> = all
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({"text": c.text, "index": i, "logprobs": null,
                                 "finish_reason": c.finish})
            })
            .collect();
        let reply = json!({"id": id, "object": "text_completion", "created": created,
                           "model": model, "choices": choices, "usage": total});
        return vec![Bytes::from(reply.to_string())];
    }
    let with_usage = include_usage(body);
    let event = |choices: Value, usage_value: Value| {
        let mut c = json!({"id": id, "object": "text_completion", "created": created,
                           "model": model, "choices": choices});
        if with_usage {
            c["usage"] = usage_value;
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut out = Vec::new();
    for (i, c) in all.iter().enumerate() {
        for piece in words(&c.text).filter(|p| !p.is_empty()) {
            out.push(event(
                json!([{"text": piece, "index": i, "logprobs": null, "finish_reason": null}]),
                Value::Null,
            ));
        }
        out.push(event(
            json!([{"text": "", "index": i, "logprobs": null, "finish_reason": c.finish}]),
            Value::Null,
        ));
    }
    if with_usage {
        out.push(event(json!([]), total));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}
