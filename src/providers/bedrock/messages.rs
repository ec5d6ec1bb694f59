//! OpenAI chat `messages` -> Converse `system` blocks and `messages` turns.
//!
//! Place in the pipeline: called by `request::chat_request`. System and
//! developer messages (wherever they stand) become `system` text blocks in
//! order; user content becomes `text` / `image` blocks; assistant
//! `tool_calls` become `toolUse` blocks; `tool` messages become `toolResult`
//! blocks in a user turn. Consecutive turns of one role are merged, as
//! Converse wants user and assistant to alternate. Empty text parts are
//! left out (Bedrock rejects blank text blocks; an assistant turn with
//! tool calls often carries `content: ""`), and so is a message's `name`.
//!
//! Must not: fetch image URLs (Bedrock takes bytes only: http(s) image URLs
//! are Unsupported), invent turns, or reorder non-system messages.

use serde_json::{Map, Value, json};

use super::{invalid, unsupported};
use crate::providers::translate::TranslateError;

/// The Converse side of an OpenAI `messages` array.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// `[{"text": ...}]`, empty when there was no system message.
    pub system: Vec<Value>,
    /// `[{"role": "user"|"assistant", "content": [...]}]`.
    pub messages: Vec<Value>,
    /// Some turn holds a `toolUse` or `toolResult` block (Converse then
    /// needs a `toolConfig`).
    pub has_tool_blocks: bool,
}

pub fn convert_messages(messages: &[Value]) -> Result<Converted, TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut has_tool_blocks = false;
    for (i, message) in messages.iter().enumerate() {
        let at = |what: &str| format!("messages[{i}]: {what}");
        let m = message
            .as_object()
            .ok_or_else(|| invalid(at("must be an object")))?;
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(at("missing 'role'")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                let texts = text_parts(content, false).map_err(|e| prefix(e, i))?;
                system.extend(texts.into_iter().map(|t| json!({ "text": t })));
                continue;
            }
            "user" => ("user", user_blocks(content).map_err(|e| prefix(e, i))?),
            "assistant" => {
                let blocks = assistant_blocks(m, content).map_err(|e| prefix(e, i))?;
                has_tool_blocks |= blocks.iter().any(|b| b.get("toolUse").is_some());
                ("assistant", blocks)
            }
            "tool" => {
                has_tool_blocks = true;
                (
                    "user",
                    vec![tool_result(m, content).map_err(|e| prefix(e, i))?],
                )
            }
            "function" => return Err(unsupported("messages with role \"function\"")),
            other => return Err(invalid(at(&format!("unknown role \"{other}\"")))),
        };
        if blocks.is_empty() {
            return Err(invalid(at("has no content")));
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    Ok(Converted {
        system,
        messages,
        has_tool_blocks,
    })
}

fn prefix(e: TranslateError, i: usize) -> TranslateError {
    match e {
        TranslateError::InvalidRequest(m) => invalid(format!("messages[{i}]: {m}")),
        other => other,
    }
}

/// A string, or an array of `text` parts (and `refusal` parts when
/// `refusals`), as the non-empty texts in order. `null` is no text.
fn text_parts(content: &Value, refusals: bool) -> Result<Vec<String>, TranslateError> {
    let mut out = Vec::new();
    match content {
        Value::Null => {}
        Value::String(s) => out.push(s.clone()),
        Value::Array(parts) => {
            for part in parts {
                let ty = part.get("type").and_then(Value::as_str).unwrap_or("");
                let key = match ty {
                    "text" => "text",
                    "refusal" if refusals => "refusal",
                    other => return Err(unsupported(format!("content part \"{other}\" here"))),
                };
                let text = part
                    .get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("'{ty}' part without '{key}'")))?;
                out.push(text.to_string());
            }
        }
        _ => return Err(invalid("'content' must be a string, an array or null")),
    }
    out.retain(|t| !t.is_empty());
    Ok(out)
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, TranslateError> {
    let Value::Array(parts) = content else {
        return Ok(text_parts(content, false)?
            .into_iter()
            .map(|t| json!({ "text": t }))
            .collect());
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("'text' part without 'text'"))?;
                if !text.is_empty() {
                    blocks.push(json!({ "text": text }));
                }
            }
            "image_url" => {
                let url = part
                    .get("image_url")
                    .and_then(|u| u.get("url").or(Some(u)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("'image_url' part without 'url'"))?;
                blocks.push(image_block(url)?);
            }
            "input_audio" => return Err(unsupported("input_audio content parts")),
            "file" => return Err(unsupported("file content parts")),
            other => return Err(unsupported(format!("content part \"{other}\""))),
        }
    }
    Ok(blocks)
}

/// `data:image/png;base64,...` -> an image block with the base64 bytes as
/// they are (JSON blobs are base64 on the Converse wire).
fn image_block(url: &str) -> Result<Value, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(unsupported(
                "image_url with an http(s) URL (Bedrock takes image bytes only; send a data: URL)",
            ));
        }
        return Err(invalid("image_url must be a data: or http(s) URL"));
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| invalid("malformed data: URL in image_url"))?;
    let Some(mime) = meta.strip_suffix(";base64") else {
        return Err(unsupported("image_url data: URL that is not base64"));
    };
    let mime = mime.split(';').next().unwrap_or("").to_ascii_lowercase();
    let format = match mime.as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => return Err(unsupported(format!("image type \"{other}\""))),
    };
    if data.is_empty() {
        return Err(invalid("empty image data in image_url"));
    }
    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
}

fn assistant_blocks(m: &Map<String, Value>, content: &Value) -> Result<Vec<Value>, TranslateError> {
    if m.get("audio").is_some_and(|a| !a.is_null()) {
        return Err(unsupported("assistant audio"));
    }
    if m.get("function_call").is_some_and(|f| !f.is_null()) {
        return Err(unsupported("function_call (use tool_calls)"));
    }
    let mut blocks: Vec<Value> = text_parts(content, true)?
        .into_iter()
        .map(|t| json!({ "text": t }))
        .collect();
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid("'tool_calls' must be an array")),
    };
    for call in calls {
        if call
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function")
            != "function"
        {
            return Err(unsupported("tool calls of a type other than \"function\""));
        }
        let id = call.get("id").and_then(Value::as_str);
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err(invalid("tool call without 'id' or 'function.name'"));
        };
        let input = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map_err(|_| invalid(format!("tool call {id}: 'arguments' is not valid JSON")))?,
            Some(_) => return Err(invalid("tool call 'arguments' must be a string")),
        };
        blocks.push(json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }));
    }
    Ok(blocks)
}

fn tool_result(m: &Map<String, Value>, content: &Value) -> Result<Value, TranslateError> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("tool message without 'tool_call_id'"))?;
    let parts: Vec<Value> = text_parts(content, false)?
        .into_iter()
        .map(|t| json!({ "text": t }))
        .collect();
    Ok(json!({ "toolResult": { "toolUseId": id, "content": parts } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(messages: Value) -> Result<Converted, TranslateError> {
        convert_messages(messages.as_array().unwrap())
    }

    #[test]
    fn hoists_system_and_developer_and_merges_turns() {
        let c = convert(json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": [{"type": "text", "text": "there"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": "Salut"},
        ]))
        .unwrap();
        assert_eq!(
            c.system,
            vec![json!({"text": "Be brief."}), json!({"text": "Use French."})]
        );
        assert_eq!(
            c.messages,
            vec![
                json!({"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]}),
                json!({"role": "assistant", "content": [{"text": "Salut"}]}),
            ]
        );
        assert!(!c.has_tool_blocks);
    }

    #[test]
    fn images_from_data_urls_only() {
        let c = convert(json!([{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"}},
        ]}]))
        .unwrap();
        assert_eq!(
            c.messages[0]["content"][1],
            json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}})
        );
        let http = json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]);
        assert!(matches!(
            convert(http),
            Err(TranslateError::Unsupported { .. })
        ));
        let bmp = json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]);
        assert!(matches!(
            convert(bmp),
            Err(TranslateError::Unsupported { .. })
        ));
        let audio =
            json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]);
        assert!(matches!(
            convert(audio),
            Err(TranslateError::Unsupported { .. })
        ));
    }

    #[test]
    fn tool_calls_and_results_round_trip() {
        let c = convert(json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"},
        ]))
        .unwrap();
        assert!(c.has_tool_blocks);
        assert_eq!(
            c.messages[1],
            json!({"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "call_2", "name": "get_time", "input": {}}}]})
        );
        assert_eq!(
            c.messages[2],
            json!({"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "noon"}]}},
                {"text": "Thanks"}]})
        );
        assert_eq!(c.messages.len(), 3);
    }

    #[test]
    fn rejects_malformed_messages() {
        let bad_args = json!([{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]);
        let err = convert(bad_args).unwrap_err();
        assert!(
            matches!(&err, TranslateError::InvalidRequest(m) if m.starts_with("messages[0]")),
            "{err}"
        );
        assert!(matches!(
            convert(json!([{"role": "tool", "content": "x"}])),
            Err(TranslateError::InvalidRequest(_))
        ));
        assert!(matches!(
            convert(json!([{"role": "user", "content": ""}])),
            Err(TranslateError::InvalidRequest(_))
        ));
        assert!(matches!(
            convert(json!([{"role": "function", "name": "f", "content": "x"}])),
            Err(TranslateError::Unsupported { .. })
        ));
        assert!(matches!(
            convert(json!([{"role": "wizard", "content": "x"}])),
            Err(TranslateError::InvalidRequest(_))
        ));
    }
}
