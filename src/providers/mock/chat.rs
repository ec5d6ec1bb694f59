//! The mock's chat answers: text, tool calls and structured outputs, whole
//! or as OpenAI-shaped chunks.
//!
//! Place in the pipeline: called by the `mock` provider per chat attempt.
//! Honours `n`, `max_tokens`/`max_completion_tokens` (the text cut to that
//! many words, `finish_reason: "length"`), `stream_options.include_usage`,
//! `tools` with `tool_choice` (`required` or a named function forces a call;
//! `auto` calls a tool the last user message names, or asks the weather
//! of), `response_format` (`json_schema`, `json_object`), and reasoning
//! (a chat client's `reasoning_effort` or a translated request's): a
//! `reasoning_content` before the answer. Deterministic apart from ids;
//! must not do I/O.

use bytes::Bytes;
use serde_json::{Map, Value, json};

pub(super) use crate::api::chat::include_usage;

use super::schema::example;
use super::{last_user_text, usage, word_count};

/// What one chat call answers, before it is shaped as a body or chunks.
pub(super) struct Answer {
    /// What the mock "reasons" first, when reasoning was asked for.
    pub reasoning: Option<String>,
    pub content: Option<String>,
    /// `(name, arguments as JSON text)` of the tool the answer calls.
    pub tool_call: Option<(String, String)>,
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
    let (content, tool_call) = if let Some((tool, schema)) = tool_to_call(body, &prompt) {
        finish = "tool_calls";
        let args = example(schema).to_string();
        (None, Some((tool.to_string(), args)))
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
        .or(tool_call.as_ref().map(|(_, a)| a.as_str()))
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

/// The tool the answer calls, with its parameter schema, if any.
fn tool_to_call<'a>(body: &'a Map<String, Value>, prompt: &str) -> Option<(&'a str, &'a Value)> {
    let tools = body.get("tools")?.as_array()?;
    let function = |t: &'a Value| {
        let f = t.get("function")?;
        let name = f.get("name")?.as_str()?;
        Some((name, f.get("parameters").unwrap_or(&Value::Null), f))
    };
    let mut defined = tools.iter().filter_map(function);
    match body.get("tool_choice") {
        Some(Value::String(c)) if c == "none" => None,
        Some(Value::String(c)) if c == "required" => defined.next().map(|(n, s, _)| (n, s)),
        Some(Value::Object(c)) => {
            let wanted = c.get("function")?.get("name")?.as_str()?;
            defined
                .find(|(n, _, _)| *n == wanted)
                .map(|(n, s, _)| (n, s))
        }
        // `auto`: once a tool has answered, the model answers in text.
        _ if last_tool_result(body).is_some() => None,
        _ => {
            let asked = prompt.to_lowercase();
            defined
                .find(|(n, _, f)| {
                    let about = format!(
                        "{} {}",
                        n.to_lowercase(),
                        f.get("description")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_lowercase()
                    );
                    asked.contains(&n.to_lowercase())
                        || (asked.contains("weather") && about.contains("weather"))
                })
                .map(|(n, s, _)| (n, s))
        }
    }
}

/// The content of a `tool` message after the last user message.
fn last_tool_result(body: &Map<String, Value>) -> Option<String> {
    let last = body.get("messages")?.as_array()?.last()?;
    if last.get("role").and_then(Value::as_str) != Some("tool") {
        return None;
    }
    match last.get("content") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => Some(String::new()),
    }
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
        Some((name, args)) => json!({"role": "assistant", "content": null, "refusal": null,
            "tool_calls": [{"id": call_id(name), "type": "function",
                            "function": {"name": name, "arguments": args}}]}),
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
            (Some((name, args)), _) => {
                out.push(delta(
                    i,
                    json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                        "id": call_id(name), "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ));
                for piece in fragments(args) {
                    out.push(delta(
                        i,
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                        Value::Null,
                    ));
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
