//! Messages turns and content blocks -> OpenAI chat messages.
//!
//! Place in the pipeline: called by [`super::request::to_chat`] only.
//! Turns: `user` (text, image with a base64 or url source, `tool_result`
//! blocks, which become `tool` messages ahead of the rest of the turn),
//! `assistant` (text, `tool_use` as tool calls; thinking blocks of earlier
//! turns are left out, as chat has no place for them, and named), and
//! `system` turns anywhere in the conversation (Anthropic's mid-conversation
//! system messages), which become system messages in place. `cache_control`
//! on any block is accepted and named. Blocks chat cannot carry (documents,
//! images by file id, server tool results) are refused whatever the
//! route's choice: dropping content would change the answer. Must not do
//! I/O.

use serde_json::{Value, json};

use super::MessagesError;
use crate::api::ignored::Ignored;
use crate::config::Unsupported;

/// The translation's running state: the route's choice and what was
/// ignored so far.
#[derive(Debug)]
pub(super) struct Tx {
    policy: Unsupported,
    pub(super) ignored: Ignored,
}

impl Tx {
    pub(super) fn new(policy: Unsupported) -> Self {
        Tx {
            policy,
            ignored: Ignored::default(),
        }
    }

    /// Something chat cannot express: refused (`what` names it for the
    /// client), or dropped and named `name` under the metric `label`.
    pub(super) fn unsupported(
        &mut self,
        what: String,
        name: &str,
        label: &'static str,
    ) -> Result<(), MessagesError> {
        match self.policy {
            Unsupported::Reject => Err(MessagesError::Unsupported(what)),
            Unsupported::Drop => {
                self.ignored.add(name, label);
                Ok(())
            }
        }
    }

    fn note_cache_control(&mut self, block: &Value) {
        if block.get("cache_control").is_some() {
            self.ignored.field("cache_control");
        }
    }
}

/// A string, or text blocks joined by blank lines (`system`, system turns,
/// tool results).
pub(super) fn system_text(v: &Value, field: &str, tx: &mut Tx) -> Result<String, MessagesError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for b in blocks {
                tx.note_cache_control(b);
                match (b.get("type").and_then(Value::as_str), b.get("text")) {
                    (Some("text"), Some(Value::String(t))) => parts.push(t.as_str()),
                    (Some(other), _) if other != "text" => {
                        return Err(MessagesError::Unsupported(format!(
                            "`{other}` blocks in {field}"
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

/// One Messages turn as one or more chat messages.
pub(super) fn message(m: &Value, out: &mut Vec<Value>, tx: &mut Tx) -> Result<(), MessagesError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("");
    let content = m.get("content");
    match (role, content) {
        ("system", Some(c)) => {
            let text = system_text(c, "a system turn", tx)?;
            out.push(json!({"role": "system", "content": text}));
            return Ok(());
        }
        ("user" | "assistant", Some(Value::String(s))) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        ("user" | "assistant", Some(Value::Array(_))) => {}
        ("user" | "assistant" | "system", _) => {
            return Err(MessagesError::Invalid(
                "message content must be a string or an array of blocks".into(),
            ));
        }
        _ => {
            return Err(MessagesError::Invalid(format!(
                "message role must be `user`, `assistant` or `system`, not {role:?}"
            )));
        }
    }
    let blocks = content
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if role == "assistant" {
        out.push(assistant(blocks, tx)?);
        return Ok(());
    }
    let mut parts = Vec::new();
    for b in blocks {
        tx.note_cache_control(b);
        match b.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => parts.push(json!({"type": "text", "text": str_field(b, "text")?})),
            "image" => parts.push(image(b)?),
            "tool_result" => {
                let id = str_field(b, "tool_use_id")?;
                let content = match b.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(c) => system_text(c, "tool_result.content", tx)?,
                };
                let content = if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    format!("Error: {content}")
                } else {
                    content
                };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            other => {
                return Err(MessagesError::Unsupported(format!("`{other}` blocks")));
            }
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn assistant(blocks: &[Value], tx: &mut Tx) -> Result<Value, MessagesError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        tx.note_cache_control(b);
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
            "thinking" | "redacted_thinking" => {
                tx.ignored.add("messages:thinking", "thinking_history")
            }
            other => {
                return Err(MessagesError::Unsupported(format!(
                    "assistant `{other}` blocks"
                )));
            }
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut msg = json!({"role": "assistant", "content": content});
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
        Some(other) => {
            return Err(MessagesError::Unsupported(format!(
                "images with a `{other}` source"
            )));
        }
        None => return Err(MessagesError::Invalid("image source without `type`".into())),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

pub(super) fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, MessagesError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| MessagesError::Invalid(format!("missing string field `{key}`")))
}
