//! Responses API request -> chat completions request.
//!
//! Place in the pipeline: called once per client request by `server` when a
//! route has a target that does not pass `/responses` through; the chat
//! request it makes is sent to each such target as any chat request is.
//! Translates `input` (a string, or message / `function_call` /
//! `function_call_output` items), `instructions`, function tools,
//! `tool_choice`, sampling and token limits and `text.format`. Everything
//! that needs the provider's stored state or built-in tools
//! (`previous_response_id`, `conversation`, `background`, `store`, web
//! search, ...) is refused by name: it must never be dropped silently.

use serde_json::{Map, Value, json};

use super::{ResponsesError, invalid, unsupported};
use crate::api::chat::ChatRequest;

/// Top-level fields with no meaning for a stateless chat target when set.
const STATEFUL: &[&str] = &["previous_response_id", "conversation", "prompt"];

/// Copied to the chat request under the same name when present.
const SAME_NAME: &[&str] = &[
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// Read here, echoed in the answer, or nothing to translate.
const HANDLED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "text",
    "stream",
    "stream_options",
    "metadata",
    "store",
    "background",
    "include",
    "truncation",
    "reasoning",
];

/// The chat request for `body` (a `/v1/responses` body).
pub fn to_chat(body: &Map<String, Value>) -> Result<ChatRequest, ResponsesError> {
    for (k, v) in body {
        let known = HANDLED.contains(&k.as_str())
            || SAME_NAME.contains(&k.as_str())
            || STATEFUL.contains(&k.as_str());
        if !known && !v.is_null() {
            return Err(unsupported(format!("the `{k}` field")));
        }
    }
    for k in STATEFUL {
        if body.get(*k).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(format!(
                "`{k}` (it needs state stored by the provider)"
            )));
        }
    }
    if body.get("background") == Some(&Value::Bool(true)) {
        return Err(unsupported("`background: true`"));
    }
    if body.get("store") == Some(&Value::Bool(true)) {
        return Err(unsupported(
            "`store: true` (answers are not stored for later retrieval)",
        ));
    }
    if let Some(Value::Array(inc)) = body.get("include")
        && let Some(first) = inc.first()
    {
        return Err(unsupported(format!("`include` of {first}")));
    }
    if let Some(t) = body.get("truncation").and_then(Value::as_str)
        && t != "disabled"
    {
        return Err(unsupported(format!("`truncation: {t}`")));
    }
    let mut chat = Map::new();
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    chat.insert("model".into(), model.clone());
    chat.insert("messages".into(), Value::Array(messages(body)?));
    for k in SAME_NAME {
        if let Some(v) = body.get(*k).filter(|v| !v.is_null()) {
            chat.insert((*k).to_string(), v.clone());
        }
    }
    if let Some(v) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_tokens".into(), v.clone());
    }
    if let Some(effort) = body.get("reasoning").and_then(|r| r.get("effort"))
        && !effort.is_null()
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(Value::Array(tools)) = body.get("tools")
        && !tools.is_empty()
    {
        let tools = tools.iter().map(tool).collect::<Result<Vec<_>, _>>()?;
        chat.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
        chat.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(format) = body.get("text").map(text_format).transpose()?.flatten() {
        chat.insert("response_format".into(), format);
    }
    let stream = body.get("stream") == Some(&Value::Bool(true));
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(ChatRequest {
        model: model.as_str().unwrap_or_default().to_string(),
        stream,
        body: chat,
        wire_len: 0,
    })
}

fn messages(body: &Map<String, Value>) -> Result<Vec<Value>, ResponsesError> {
    let mut out = Vec::new();
    match body.get("instructions") {
        Some(Value::String(s)) => out.push(json!({"role": "system", "content": s})),
        None | Some(Value::Null) => {}
        Some(_) => return Err(invalid("'instructions' must be a string.")),
    }
    match body.get("input") {
        Some(Value::String(s)) => out.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                add_item(&mut out, item).map_err(|e| match e {
                    ResponsesError::Invalid(m) => invalid(format!("input[{i}]: {m}")),
                    other => other,
                })?;
            }
        }
        _ => {}
    }
    if !out.iter().any(|m| m["role"] != "system") {
        return Err(invalid("'input' must contain at least one input item."));
    }
    Ok(out)
}

fn str_field<'a>(item: &'a Value, name: &str) -> Result<&'a str, ResponsesError> {
    item.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("'{name}' must be a string.")))
}

/// Appends the chat message(s) for one input item.
fn add_item(out: &mut Vec<Value>, item: &Value) -> Result<(), ResponsesError> {
    let kind = match item.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None if item.get("role").is_some() => "message",
        _ => return Err(invalid("each input item needs a 'type' or a 'role'.")),
    };
    match kind {
        "message" => {
            let role = match str_field(item, "role")? {
                "user" => "user",
                "assistant" => "assistant",
                "system" | "developer" => "system",
                other => return Err(invalid(format!("unknown role '{other}'."))),
            };
            let content = content(item.get("content"), role == "assistant")?;
            out.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({
                "id": str_field(item, "call_id")?,
                "type": "function",
                "function": {"name": str_field(item, "name")?,
                             "arguments": str_field(item, "arguments")?},
            });
            // Calls right after an assistant turn belong to it.
            match out.last_mut() {
                Some(Value::Object(last)) if last.get("role") == Some(&json!("assistant")) => {
                    match last.get_mut("tool_calls") {
                        Some(Value::Array(calls)) => calls.push(call),
                        _ => {
                            last.insert("tool_calls".into(), json!([call]));
                        }
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => join_text(parts)?,
                _ => return Err(invalid("'output' must be a string or content parts.")),
            };
            out.push(
                json!({"role": "tool", "tool_call_id": str_field(item, "call_id")?,
                            "content": output}),
            );
        }
        "item_reference" => {
            return Err(unsupported(
                "input items of type `item_reference` (they need state stored by the provider)",
            ));
        }
        other => return Err(unsupported(format!("input items of type `{other}`"))),
    }
    Ok(())
}

/// Text of `input_text` / `output_text` / `refusal` parts, joined.
fn join_text(parts: &[Value]) -> Result<String, ResponsesError> {
    let mut text = String::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                text.push_str(str_field(p, "text")?);
            }
            Some("refusal") => text.push_str(str_field(p, "refusal")?),
            Some(other) => {
                return Err(unsupported(format!("content parts of type `{other}` here")));
            }
            None => return Err(invalid("each content part needs a 'type'.")),
        }
    }
    Ok(text)
}

/// A message's content: a string as is; parts as chat parts (assistant
/// history as one string, the form every chat kind accepts).
fn content(content: Option<&Value>, assistant: bool) -> Result<Value, ResponsesError> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        _ => return Err(invalid("'content' must be a string or an array of parts.")),
    };
    if assistant {
        return Ok(Value::String(join_text(parts)?));
    }
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text") => {
                out.push(json!({"type": "text", "text": str_field(p, "text")?}));
            }
            Some("input_image") => {
                let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                    return Err(unsupported(
                        "`input_image` by `file_id` (only `image_url`, a URL or data URL)",
                    ));
                };
                let mut image = json!({"url": url});
                if let Some(d) = p.get("detail").filter(|d| !d.is_null()) {
                    image["detail"] = d.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            Some(other) => return Err(unsupported(format!("content parts of type `{other}`"))),
            None => return Err(invalid("each content part needs a 'type'.")),
        }
    }
    Ok(Value::Array(out))
}

/// A Responses function tool as a chat tool; built-in tools are refused.
fn tool(t: &Value) -> Result<Value, ResponsesError> {
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "function" {
        return Err(unsupported(format!(
            "the built-in tool `{kind}` (only `function` tools can be translated)"
        )));
    }
    let mut function = Map::new();
    function.insert("name".into(), Value::String(str_field(t, "name")?.into()));
    for k in ["description", "parameters", "strict"] {
        if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
            function.insert(k.into(), v.clone());
        }
    }
    Ok(json!({"type": "function", "function": function}))
}

fn tool_choice(choice: &Value) -> Result<Value, ResponsesError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type") == Some(&json!("function")) => {
            let name = str_field(choice, "name")?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        other => Err(unsupported(format!("`tool_choice` {other}"))),
    }
}

/// `text.format` as a chat `response_format` (`None` for plain text).
fn text_format(text: &Value) -> Result<Option<Value>, ResponsesError> {
    if let Some(Value::Object(o)) = Some(text)
        && let Some(k) = o.keys().find(|k| *k != "format")
        && !o[k.as_str()].is_null()
    {
        return Err(unsupported(format!("`text.{k}`")));
    }
    let Some(format) = text.get("format").filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                Value::String(str_field(format, "name")?.into()),
            );
            for k in ["schema", "strict", "description"] {
                if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                    schema.insert(k.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(invalid(
            "'text.format.type' must be text, json_object or json_schema.",
        )),
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
