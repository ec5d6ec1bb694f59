//! OpenAI `messages` -> Gemini `systemInstruction` and `contents`.
//!
//! Place in the pipeline: called by [`super::request::chat_request`].
//!
//! - `system` / `developer` messages -> `systemInstruction.parts` (text only;
//!   Gemini has one system instruction, so they are joined in order wherever
//!   they appear);
//! - `user` -> role `user`; `assistant` -> role `model`; consecutive turns of
//!   one role are merged into one `Content`;
//! - parts: `text`; `image_url` with a `data:` URL -> `inlineData`, with an
//!   `http(s)` URL -> `fileData` (Gemini fetches public and signed URLs; the
//!   MIME type is guessed from the extension, `image/jpeg` otherwise; `detail`
//!   is dropped); `input_audio` -> `inlineData` (`audio/wav`, `audio/mp3`);
//!   `file` with `file_data` -> `inlineData` (a `file_id` is Unsupported);
//! - assistant `tool_calls` -> `functionCall {name, args}` (arguments parsed;
//!   must be a JSON object); the first call of each assistant message carries
//!   a placeholder `thoughtSignature` when asked to (Gemini 3 refuses replayed
//!   calls without one and the gateway cannot keep the real one);
//! - `tool` messages -> role `user` with `functionResponse {name, response}`:
//!   the name comes from the nearest earlier assistant tool call with that id;
//!   content that is not a JSON object is wrapped as `{"content": text}`.
//!
//! Dropped: message `name`, assistant `refusal`. Refused: role `function`,
//! assistant `audio`, unknown part types. Must not reorder turns.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{invalid, unsupported};
use crate::providers::translate::TranslateError;

/// What Gemini 3 accepts in `thoughtSignature` for a call it did not sign
/// (see ai.google.dev/gemini-api/docs/thought-signatures).
pub const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

/// The translated conversation.
#[derive(Debug)]
pub struct Conversation {
    /// `systemInstruction.parts`, empty when there was no system message.
    pub system: Vec<Value>,
    pub contents: Vec<Value>,
}

pub fn convert(messages: &[Value], sign_calls: bool) -> Result<Conversation, TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let content = message.get("content").unwrap_or(&Value::Null);
        let at = |what: &str| format!("messages[{i}]: {what}");
        match role {
            "system" | "developer" => system.extend(text_parts(content, &at("content"))?),
            "user" => push(&mut turns, "user", user_parts(content, &at("content"))?),
            "assistant" => {
                if message.get("audio").is_some_and(|a| !a.is_null()) {
                    return Err(unsupported("assistant `audio` in messages"));
                }
                let mut parts = text_parts(content, &at("content"))?;
                let calls = match message.get("tool_calls") {
                    None | Some(Value::Null) => &[][..],
                    Some(Value::Array(calls)) => calls.as_slice(),
                    Some(_) => return Err(invalid(at("`tool_calls` must be an array"))),
                };
                for (n, call) in calls.iter().enumerate() {
                    let (id, name, args) =
                        function_call(call).map_err(|e| invalid(at(&e.to_string())))?;
                    call_names.insert(id, name);
                    let mut part = json!({"functionCall": {"name": name, "args": args}});
                    if sign_calls && n == 0 {
                        part["thoughtSignature"] = Value::from(PLACEHOLDER_SIGNATURE);
                    }
                    parts.push(part);
                }
                push(&mut turns, "model", parts);
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(at("tool message without `tool_call_id`")))?;
                let name = call_names.get(id).ok_or_else(|| {
                    invalid(at("`tool_call_id` matches no earlier assistant tool call"))
                })?;
                let text = joined_text(content, &at("content"))?;
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({ "content": text }),
                };
                let part = json!({"functionResponse": {"name": name, "response": response}});
                push(&mut turns, "user", vec![part]);
            }
            "function" => return Err(unsupported("role `function` (legacy function calling)")),
            other => return Err(invalid(at(&format!("unknown role `{other}`")))),
        }
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok(Conversation { system, contents })
}

fn push(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(parts),
        _ => turns.push((role, parts)),
    }
}

/// Why an OpenAI tool call cannot be sent.
#[derive(Debug, thiserror::Error)]
enum ToolCallError {
    #[error("only `function` tool calls can be sent")]
    NotFunction,
    #[error("tool call without `id`")]
    NoId,
    #[error("tool call without `function`")]
    NoFunction,
    #[error("tool call without `function.name`")]
    NoName,
    #[error("arguments of tool call `{0}` are not a JSON object")]
    ArgsNotObject(String),
    #[error("`function.arguments` must be a string")]
    ArgsNotString,
}

/// `(id, name, args)` of one OpenAI tool call.
fn function_call(call: &Value) -> Result<(&str, &str, Value), ToolCallError> {
    if call
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "function")
    {
        return Err(ToolCallError::NotFunction);
    }
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or(ToolCallError::NoId)?;
    let function = call.get("function").ok_or(ToolCallError::NoFunction)?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or(ToolCallError::NoName)?;
    let args = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(Value::Object(o)) => Value::Object(o),
            _ => return Err(ToolCallError::ArgsNotObject(id.to_string())),
        },
        Some(_) => return Err(ToolCallError::ArgsNotString),
    };
    Ok((id, name, args))
}

/// Text-only content (system, assistant): a string or `text`/`refusal` parts.
fn text_parts(content: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({ "text": s })]),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => out.extend(text_of(part, at)?.map(|t| json!({ "text": t }))),
                    Some("refusal") => {}
                    Some(other) => {
                        return Err(unsupported(format!(
                            "`{other}` content parts in this role ({at})"
                        )));
                    }
                    None => return Err(invalid(format!("{at}: content part without `type`"))),
                }
            }
            Ok(out)
        }
        _ => Err(invalid(format!(
            "{at} must be a string or an array of parts"
        ))),
    }
}

fn text_of<'a>(part: &'a Value, at: &str) -> Result<Option<&'a str>, TranslateError> {
    let text = part
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}: text part without `text`")))?;
    Ok((!text.is_empty()).then_some(text))
}

/// Tool content as one string (a string, or text parts joined).
fn joined_text(content: &Value, at: &str) -> Result<String, TranslateError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        _ => Ok(text_parts(content, at)?
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect()),
    }
}

fn user_parts(content: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    let Value::Array(parts) = content else {
        return text_parts(content, at);
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => out.extend(text_of(part, at)?.map(|t| json!({ "text": t }))),
            Some("image_url") => {
                let url = part
                    .get("image_url")
                    .and_then(|i| i.get("url").or(Some(i)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{at}: image_url part without `url`")))?;
                out.push(image(url, at)?);
            }
            Some("input_audio") => {
                let audio = part.get("input_audio").unwrap_or(&Value::Null);
                let data = audio.get("data").and_then(Value::as_str);
                let format = audio.get("format").and_then(Value::as_str);
                let (Some(data), Some(format)) = (data, format) else {
                    return Err(invalid(format!(
                        "{at}: input_audio needs `data` and `format`"
                    )));
                };
                out.push(
                    json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
                );
            }
            Some("file") => {
                let file = part.get("file").unwrap_or(&Value::Null);
                match file.get("file_data").and_then(Value::as_str) {
                    Some(url) => out.push(data_url(url, at)?),
                    None => return Err(unsupported("`file` parts without `file_data` (file ids)")),
                }
            }
            Some(other) => return Err(unsupported(format!("`{other}` content parts"))),
            None => return Err(invalid(format!("{at}: content part without `type`"))),
        }
    }
    Ok(out)
}

fn image(url: &str, at: &str) -> Result<Value, TranslateError> {
    if url.starts_with("data:") {
        return data_url(url, at);
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(unsupported("image URLs other than data:, http: and https:"));
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let mime = match ext {
        "png" => "image/png",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "gif" => "image/gif",
        _ => "image/jpeg",
    };
    Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
}

/// `data:<mime>;base64,<data>` -> `inlineData`.
fn data_url(url: &str, at: &str) -> Result<Value, TranslateError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
    match parsed {
        Some((mime, data)) if !mime.is_empty() => {
            Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
        }
        _ => Err(invalid(format!(
            "{at}: data URLs must be `data:<mime type>;base64,<data>`"
        ))),
    }
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
