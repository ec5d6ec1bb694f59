//! OpenAI chat request -> Cohere `POST /v2/chat` body.
//!
//! Place in the pipeline: the `cohere` provider calls [`chat_request`] with
//! the client's body (model already resolved) once per attempt.
//!
//! Translated: `system`/`developer` -> `system` messages; `user` text and
//! `image_url` parts (data: and http(s) URLs, `detail` kept); `assistant`
//! text and `tool_calls` (text beside tool calls -> `tool_plan`); `tool`
//! results with `tool_call_id`; `tools` (function) with `strict` ->
//! `strict_tools`; `tool_choice` `auto` (omitted) / `none` -> `NONE` /
//! `required` -> `REQUIRED` / a named function -> only that tool, `REQUIRED`;
//! `stop` -> `stop_sequences`; `max_completion_tokens` or `max_tokens` ->
//! `max_tokens` (else [`CohereChatSettings::max_tokens`]); `temperature`,
//! `seed`, `frequency_penalty`, `presence_penalty` as they are; `top_p` ->
//! `p`, clamped to Cohere's 0.01..=0.99 (`top_p: 1`, "no nucleus cut", is
//! sent as 0.99); `top_k` (or a translated request's) -> `k` (at most 500);
//! `response_format` `json_object` / `json_schema` (its
//! `schema` -> `json_schema`) / `text` (omitted); `stream`.
//!
//! Dropped as harmless: `user`, `metadata`, `store`, `service_tier`,
//! `stream_options` (read by the stream translator), `n: 1`,
//! `parallel_tool_calls: true`, a message's `name`, null fields.
//! Refused as Unsupported: `n` > 1, `parallel_tool_calls: false`,
//! `logprobs`/`top_logprobs`, `logit_bias`, `audio`/`modalities`,
//! `prediction`, `reasoning_effort`, legacy `functions`/`function_call`,
//! the `function` role, non-text/image content parts, non-function tools,
//! and any other field. Must not drop anything that changes the answer.

use serde_json::{Map, Value, json};

use super::{invalid, unsupported};
use crate::api::chat::ChatExt;
use crate::providers::translate::TranslateError;

/// Cohere's largest `k`.
const MAX_K: u64 = 500;

/// Per-provider knobs for chat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CohereChatSettings {
    /// `max_tokens` when the client sets none (none: the model's maximum).
    pub max_tokens: Option<u64>,
}

pub fn chat_request(
    body: &Map<String, Value>,
    model: &str,
    settings: &CohereChatSettings,
) -> Result<Value, TranslateError> {
    chat_request_ext(body, &ChatExt::default(), model, settings)
}

/// [`chat_request`] for a request with a translation's extension (its
/// `top_k`; Cohere has no reasoning control to map).
pub fn chat_request_ext(
    body: &Map<String, Value>,
    ext: &ChatExt,
    model: &str,
    settings: &CohereChatSettings,
) -> Result<Value, TranslateError> {
    let mut out = Map::new();
    if let Some(k) = ext.top_k {
        out.insert("k".into(), k.min(MAX_K).into());
    }
    out.insert("model".into(), Value::from(model));
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` must be an array"))?;
    out.insert(
        "messages".into(),
        Value::Array(messages.iter().map(message).collect::<Result<_, _>>()?),
    );
    let mut max_tokens = settings.max_tokens.map(Value::from);
    let mut tools: Option<Vec<Value>> = None;
    let mut tool_choice: Option<&Value> = None;
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" | "user" | "metadata" | "store" | "service_tier"
            | "stream_options" => {}
            "stream" => {
                out.insert("stream".into(), Value::Bool(value.as_bool() == Some(true)));
            }
            "n" if value.as_u64() == Some(1) => {}
            "n" => return Err(unsupported("`n` other than 1")),
            "parallel_tool_calls" if value.as_bool() == Some(true) => {}
            "parallel_tool_calls" => return Err(unsupported("`parallel_tool_calls: false`")),
            "max_completion_tokens" => max_tokens = Some(positive(key, value)?),
            "max_tokens" if !body.contains_key("max_completion_tokens") => {
                max_tokens = Some(positive(key, value)?)
            }
            "max_tokens" => {}
            "temperature" | "seed" | "frequency_penalty" | "presence_penalty" => {
                if !value.is_number() {
                    return Err(invalid(format!("`{key}` must be a number")));
                }
                out.insert(key.clone(), value.clone());
            }
            "top_k" => {
                let k = value
                    .as_u64()
                    .ok_or_else(|| invalid("`top_k` must be a non-negative integer"))?;
                out.insert("k".into(), k.min(MAX_K).into());
            }
            "top_p" => {
                let p = value
                    .as_f64()
                    .ok_or_else(|| invalid("`top_p` must be a number"))?;
                out.insert("p".into(), Value::from(p.clamp(0.01, 0.99)));
            }
            "stop" => {
                let stops = match value {
                    Value::String(s) => vec![Value::from(s.as_str())],
                    Value::Array(items) if items.iter().all(Value::is_string) => items.clone(),
                    _ => return Err(invalid("`stop` must be a string or an array of strings")),
                };
                out.insert("stop_sequences".into(), Value::Array(stops));
            }
            "tools" => tools = Some(tool_list(value, &mut out)?),
            "tool_choice" => tool_choice = Some(value),
            "response_format" => {
                if let Some(format) = response_format(value)? {
                    out.insert("response_format".into(), format);
                }
            }
            other => return Err(unsupported(format!("`{other}`"))),
        }
    }
    if let Some(choice) = tool_choice {
        apply_tool_choice(choice, &mut tools, &mut out)?;
    }
    if let Some(tools) = tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(max) = max_tokens {
        out.insert("max_tokens".into(), max);
    }
    Ok(Value::Object(out))
}

fn positive(key: &str, value: &Value) -> Result<Value, TranslateError> {
    match value.as_u64() {
        Some(n) if n > 0 => Ok(Value::from(n)),
        _ => Err(invalid(format!("`{key}` must be a positive integer"))),
    }
}

fn message(m: &Value) -> Result<Value, TranslateError> {
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("every message needs a `role`"))?;
    let content = m.get("content").filter(|c| !c.is_null());
    match role {
        "system" | "developer" => Ok(json!({"role": "system", "content": text_of(content, role)?})),
        "user" => Ok(json!({"role": "user", "content": user_content(content)?})),
        "assistant" => assistant(m, content),
        "tool" => {
            let id = m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a `tool` message needs `tool_call_id`"))?;
            Ok(json!({"role": "tool", "tool_call_id": id, "content": text_of(content, role)?}))
        }
        "function" => Err(unsupported("the legacy `function` role")),
        other => Err(invalid(format!("unknown message role `{other}`"))),
    }
}

/// The text of a string or an array of text parts.
fn text_of(content: Option<&Value>, role: &str) -> Result<String, TranslateError> {
    match content {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => text.push_str(
                        part.get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("a text part needs `text`"))?,
                    ),
                    other => {
                        return Err(unsupported(format!(
                            "`{}` content in a `{role}` message",
                            other.unwrap_or("untyped")
                        )));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid("message `content` must be a string or an array")),
    }
}

fn user_content(content: Option<&Value>) -> Result<Value, TranslateError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(Value::from(text_of(content, "user")?));
    };
    let blocks = parts
        .iter()
        .map(|part| match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a text part needs `text`"))?;
                Ok(json!({"type": "text", "text": text}))
            }
            Some("image_url") => {
                let image = part.get("image_url");
                let url = image
                    .and_then(|i| i.get("url").or(Some(i)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("an image_url part needs `image_url.url`"))?;
                if !(url.starts_with("data:")
                    || url.starts_with("http://")
                    || url.starts_with("https://"))
                {
                    return Err(invalid("an image URL must be a data: or http(s) URL"));
                }
                let mut out = json!({"type": "image_url", "image_url": {"url": url}});
                if let Some(detail) = image.and_then(|i| i.get("detail")).and_then(Value::as_str) {
                    out["image_url"]["detail"] = Value::from(detail);
                }
                Ok(out)
            }
            other => Err(unsupported(format!(
                "`{}` content parts",
                other.unwrap_or("untyped")
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(blocks))
}

fn assistant(m: &Value, content: Option<&Value>) -> Result<Value, TranslateError> {
    let text = match content {
        Some(Value::Array(parts)) => {
            // A refusal part is the assistant's text, too.
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("refusal") => {
                        text.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or(""))
                    }
                    other => {
                        return Err(unsupported(format!(
                            "`{}` content in an `assistant` message",
                            other.unwrap_or("untyped")
                        )));
                    }
                }
            }
            text
        }
        other => text_of(other, "assistant")?,
    };
    let calls = m.get("tool_calls").filter(|c| !c.is_null());
    let Some(calls) = calls else {
        return Ok(json!({"role": "assistant", "content": text}));
    };
    let calls = calls
        .as_array()
        .ok_or_else(|| invalid("`tool_calls` must be an array"))?
        .iter()
        .map(|call| {
            if call
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function")
                != "function"
            {
                return Err(unsupported("non-function tool calls"));
            }
            let id = call.get("id").and_then(Value::as_str);
            let function = call.get("function");
            let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
            let (Some(id), Some(name)) = (id, name) else {
                return Err(invalid("a tool call needs `id` and `function.name`"));
            };
            let arguments = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or("{}");
            Ok(json!({"id": id, "type": "function",
                      "function": {"name": name, "arguments": arguments}}))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = json!({"role": "assistant", "tool_calls": calls});
    if !text.is_empty() {
        out["tool_plan"] = Value::from(text);
    }
    Ok(out)
}

/// OpenAI tools -> Cohere tools; `strict` on any sets `strict_tools`.
fn tool_list(value: &Value, out: &mut Map<String, Value>) -> Result<Vec<Value>, TranslateError> {
    let tools = value
        .as_array()
        .ok_or_else(|| invalid("`tools` must be an array"))?;
    tools
        .iter()
        .map(|tool| {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(unsupported("tools other than `function`"));
            }
            let f = tool
                .get("function")
                .ok_or_else(|| invalid("a function tool needs `function`"))?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a function tool needs `function.name`"))?;
            let parameters = f
                .get("parameters")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let mut function = json!({"name": name, "parameters": parameters});
            if let Some(d) = f.get("description").and_then(Value::as_str) {
                function["description"] = Value::from(d);
            }
            if f.get("strict").and_then(Value::as_bool) == Some(true) {
                out.insert("strict_tools".into(), Value::Bool(true));
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

fn apply_tool_choice(
    choice: &Value,
    tools: &mut Option<Vec<Value>>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let name = match choice {
        Value::String(s) if s == "auto" => return Ok(()),
        Value::String(s) if s == "none" => {
            out.insert("tool_choice".into(), Value::from("NONE"));
            return Ok(());
        }
        Value::String(s) if s == "required" => {
            out.insert("tool_choice".into(), Value::from("REQUIRED"));
            return Ok(());
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a named `tool_choice` needs `function.name`"))?,
        _ => return Err(unsupported("this `tool_choice`")),
    };
    // Cohere cannot name a tool: offer only that one, and require a call.
    let list = tools
        .as_mut()
        .ok_or_else(|| invalid("`tool_choice` names a function but `tools` is empty"))?;
    list.retain(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name));
    if list.is_empty() {
        return Err(invalid(format!(
            "`tool_choice` names `{name}`, which is not in `tools`"
        )));
    }
    out.insert("tool_choice".into(), Value::from("REQUIRED"));
    Ok(())
}

fn response_format(value: &Value) -> Result<Option<Value>, TranslateError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let schema = value
                .pointer("/json_schema/schema")
                .ok_or_else(|| invalid("`response_format.json_schema.schema` is required"))?;
            Ok(Some(json!({"type": "json_object", "json_schema": schema})))
        }
        _ => Err(unsupported("this `response_format`")),
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
