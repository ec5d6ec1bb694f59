//! Responses `input` items -> OpenAI chat messages.
//!
//! Place in the pipeline: called by [`super::request::to_chat`] only.
//! Translates a string input, and `message` items of every role
//! (`developer` and `system` become system messages in place, wherever
//! they stand), `function_call` and `custom_tool_call` items (joined to the
//! assistant turn before them, under their chat names: see
//! [`super::tools`]) and their `*_output` items. `additional_tools` items
//! hold tools (read by [`super::tools`]), no message. `reasoning` items of
//! earlier turns are left out (chat has no place for them) and named. Items that
//! need state stored by a provider (`item_reference`) or built-in tools'
//! calls are refused by name: they must never be dropped silently. Must not
//! do I/O.

use serde_json::{Map, Value, json};

use super::tools::ToolMap;
use super::{ResponsesError, invalid, unsupported};
use crate::api::ignored::Ignored;

/// The chat messages for `instructions` and `input`.
pub(super) fn messages(
    body: &Map<String, Value>,
    map: &ToolMap,
    ignored: &mut Ignored,
) -> Result<Vec<Value>, ResponsesError> {
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
                add_item(&mut out, item, map, ignored).map_err(|e| match e {
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

pub(super) fn str_field<'a>(item: &'a Value, name: &str) -> Result<&'a str, ResponsesError> {
    item.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("'{name}' must be a string.")))
}

/// Appends the chat message(s) for one input item.
fn add_item(
    out: &mut Vec<Value>,
    item: &Value,
    map: &ToolMap,
    ignored: &mut Ignored,
) -> Result<(), ResponsesError> {
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
            let content = content(item.get("content"), role != "user")?;
            out.push(json!({"role": role, "content": content}));
        }
        "function_call" | "custom_tool_call" => {
            let namespace = item.get("namespace").and_then(Value::as_str);
            let name = map.chat_name(namespace, str_field(item, "name")?);
            let arguments = if kind == "custom_tool_call" {
                json!({"input": str_field(item, "input")?}).to_string()
            } else {
                str_field(item, "arguments")?.to_string()
            };
            let call = json!({
                "id": str_field(item, "call_id")?,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
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
        "function_call_output" | "custom_tool_call_output" => {
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
        "reasoning" => ignored.add("input:reasoning", "reasoning_history"),
        "additional_tools" => {}
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

/// A message's content: a string as is; parts as chat parts (assistant and
/// system content as one string, the form every chat kind accepts).
fn content(content: Option<&Value>, as_text: bool) -> Result<Value, ResponsesError> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        _ => return Err(invalid("'content' must be a string or an array of parts.")),
    };
    if as_text {
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
