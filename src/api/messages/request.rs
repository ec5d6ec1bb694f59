//! Messages request -> OpenAI chat request, for targets that do not speak
//! Messages natively.
//!
//! Place in the pipeline: called by `routing` once per attempt on such a
//! target. Translates `system` (string or text blocks), `messages` (text,
//! image with base64 or url source, tool_use, tool_result blocks; thinking
//! blocks of earlier assistant turns are dropped, as chat has no place for
//! them), `tools`, `tool_choice` (auto/any/tool/none,
//! `disable_parallel_tool_use`), `max_tokens`, `stop_sequences`,
//! `temperature`, `top_p`, `metadata.user_id` and `stream` (with usage
//! asked for). `top_k`, enabled `thinking`, server tools and any other
//! field chat cannot express are refused as [`MessagesError::Unsupported`]
//! naming the field, never dropped silently. Must not do I/O.

use serde_json::{Map, Value, json};

use super::MessagesError;
use crate::api::chat::ChatRequest;

/// Fields copied under another name, or as they are.
const RENAMED: &[(&str, &str)] = &[
    ("max_tokens", "max_tokens"),
    ("stop_sequences", "stop"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
];

/// The OpenAI chat request for `body`, sent as `model`.
pub fn to_chat(
    body: &Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<ChatRequest, MessagesError> {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.into()));
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        messages.push(json!({"role": "system", "content": text_of(system, "system")?}));
    }
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message(m, &mut messages)?;
    }
    if messages.is_empty() {
        return Err(MessagesError::Invalid("`messages` is empty".into()));
    }
    out.insert("messages".into(), Value::Array(messages));
    let mut parallel = None;
    for (key, value) in body {
        match key.as_str() {
            "model" | "system" | "messages" | "stream" => {}
            "tools" => {
                out.insert("tools".into(), tools(value)?);
            }
            "tool_choice" => {
                let (choice, no_parallel) = tool_choice(value)?;
                out.insert("tool_choice".into(), choice);
                parallel = no_parallel.then_some(false);
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("user".into(), user.clone());
                }
            }
            "thinking" if value.get("type").and_then(Value::as_str) == Some("disabled") => {}
            k => match RENAMED.iter().find(|(from, _)| *from == k) {
                Some((_, to)) => {
                    out.insert((*to).into(), value.clone());
                }
                None => return Err(MessagesError::Unsupported(k.into())),
            },
        }
    }
    if let Some(p) = parallel
        && out.contains_key("tools")
    {
        out.insert("parallel_tool_calls".into(), Value::Bool(p));
    }
    if stream {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(ChatRequest {
        model: model.into(),
        stream,
        body: out,
        wire_len: 0,
    })
}

/// A string, or text blocks joined by blank lines.
fn text_of(v: &Value, field: &str) -> Result<String, MessagesError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for b in blocks {
                match (b.get("type").and_then(Value::as_str), b.get("text")) {
                    (Some("text"), Some(Value::String(t))) => parts.push(t.as_str()),
                    (Some(other), _) if other != "text" => {
                        return Err(MessagesError::Unsupported(format!(
                            "{field}: {other} block"
                        )));
                    }
                    _ => return Err(MessagesError::Invalid(format!("{field}: bad text block"))),
                }
            }
            Ok(parts.join("\n\n"))
        }
        _ => Err(MessagesError::Invalid(format!(
            "`{field}` must be a string or an array of blocks"
        ))),
    }
}

/// One Messages turn as one or more chat messages (tool results become
/// `tool` messages ahead of the rest of the user's turn).
fn message(m: &Value, out: &mut Vec<Value>) -> Result<(), MessagesError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("");
    if role != "user" && role != "assistant" {
        return Err(MessagesError::Invalid(format!(
            "message role must be `user` or `assistant`, not {role:?}"
        )));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => {
            return Err(MessagesError::Invalid(
                "message content must be a string or an array of blocks".into(),
            ));
        }
    };
    if role == "assistant" {
        out.push(assistant(blocks)?);
        return Ok(());
    }
    let mut parts = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => parts.push(json!({"type": "text", "text": str_field(b, "text")?})),
            "image" => parts.push(image(b)?),
            "tool_result" => {
                let id = str_field(b, "tool_use_id")?;
                let content = match b.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(c) => text_of(c, "tool_result.content")?,
                };
                let content = if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    format!("Error: {content}")
                } else {
                    content
                };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            other => return Err(MessagesError::Unsupported(format!("{other} block"))),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn assistant(blocks: &[Value]) -> Result<Value, MessagesError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => text.push_str(str_field(b, "text")?),
            "tool_use" => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": str_field(b, "id")?,
                    "type": "function",
                    "function": {"name": str_field(b, "name")?, "arguments": input.to_string()},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(MessagesError::Unsupported(format!(
                    "assistant {other} block"
                )));
            }
        }
    }
    let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    Ok(msg)
}

fn image(b: &Value) -> Result<Value, MessagesError> {
    let source = b
        .get("source")
        .ok_or_else(|| MessagesError::Invalid("image block without `source`".into()))?;
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            str_field(source, "media_type")?,
            str_field(source, "data")?
        ),
        Some("url") => str_field(source, "url")?.to_string(),
        _ => return Err(MessagesError::Unsupported("image source type".into())),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn tools(v: &Value) -> Result<Value, MessagesError> {
    let list = v
        .as_array()
        .ok_or_else(|| MessagesError::Invalid("`tools` must be an array".into()))?;
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        if let Some(kind) = t.get("type").and_then(Value::as_str)
            && kind != "custom"
        {
            return Err(MessagesError::Unsupported(format!("tools: {kind}")));
        }
        let mut f = Map::new();
        f.insert("name".into(), Value::String(str_field(t, "name")?.into()));
        if let Some(d) = t.get("description") {
            f.insert("description".into(), d.clone());
        }
        let schema = t
            .get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        f.insert("parameters".into(), schema);
        out.push(json!({"type": "function", "function": f}));
    }
    Ok(Value::Array(out))
}

/// The chat `tool_choice`, and whether parallel calls are disabled.
fn tool_choice(v: &Value) -> Result<(Value, bool), MessagesError> {
    let no_parallel = v.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true);
    let choice = match v.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => json!({"type": "function", "function": {"name": str_field(v, "name")?}}),
        _ => return Err(MessagesError::Invalid("unknown `tool_choice.type`".into())),
    };
    Ok((choice, no_parallel))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, MessagesError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| MessagesError::Invalid(format!("missing string field `{key}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(v: Value, stream: bool) -> Result<Value, MessagesError> {
        let Value::Object(m) = v else { panic!() };
        to_chat(&m, "up", stream).map(|c| Value::Object(c.body))
    }

    #[test]
    fn system_messages_tools_and_sampling_translate() {
        let out = chat(
            json!({
                "model": "route", "max_tokens": 100, "stop_sequences": ["END"],
                "temperature": 0.5, "top_p": 0.9, "metadata": {"user_id": "u1"},
                "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": true},
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "s"},
                        {"type": "text", "text": "ok"},
                        {"type": "tool_use", "id": "t1", "name": "get", "input": {"a": 1}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                        {"type": "text", "text": "thanks"}]}
                ]
            }),
            true,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "up", "max_tokens": 100, "stop": ["END"], "temperature": 0.5,
                "top_p": 0.9, "user": "u1", "parallel_tool_calls": false,
                "stream": true, "stream_options": {"include_usage": true},
                "tools": [{"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "get"}},
                "messages": [
                    {"role": "system", "content": "a\n\nb"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                    {"role": "assistant", "content": "ok", "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}]},
                    {"role": "tool", "tool_call_id": "t1", "content": "42"},
                    {"role": "user", "content": [{"type": "text", "text": "thanks"}]}
                ]
            })
        );
    }

    #[test]
    fn tool_choices_map() {
        for (given, want) in [
            ("auto", json!("auto")),
            ("any", json!("required")),
            ("none", json!("none")),
        ] {
            let out = chat(
                json!({"model": "r", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": given}}),
                false,
            )
            .unwrap();
            assert_eq!(out["tool_choice"], want);
            assert!(out.get("stream").is_none());
        }
    }

    #[test]
    fn what_chat_cannot_express_is_refused_by_name() {
        let base = |k: &str, v: Value| {
            let mut b = json!({"model": "r", "messages": [{"role": "user", "content": "x"}]});
            b[k] = v;
            chat(b, false)
        };
        assert_eq!(
            base("top_k", json!(5)),
            Err(MessagesError::Unsupported("top_k".into()))
        );
        assert!(matches!(
            base(
                "thinking",
                json!({"type": "enabled", "budget_tokens": 1024})
            ),
            Err(MessagesError::Unsupported(_))
        ));
        assert!(base("thinking", json!({"type": "disabled"})).is_ok());
        assert!(matches!(
            base(
                "tools",
                json!([{"type": "web_search_20250305", "name": "web_search"}])
            ),
            Err(MessagesError::Unsupported(_))
        ));
        let bad_role = chat(
            json!({"model": "r", "messages": [{"role": "system", "content": "x"}]}),
            false,
        );
        assert!(matches!(bad_role, Err(MessagesError::Invalid(_))));
    }
}
