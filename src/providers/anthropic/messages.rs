//! OpenAI `messages` -> Anthropic top-level `system` plus `messages` turns.
//!
//! Place in the pipeline: called by [`super::request::chat_request`] only.
//! Rules: `system` and `developer` messages become the top-level `system`
//! (wherever they appear; Anthropic has no system role inside `messages`);
//! `tool` messages become `tool_result` blocks in a user turn; consecutive
//! turns of the same role are merged so roles alternate, with `tool_result`
//! blocks first in a user turn as Anthropic requires; empty text parts are
//! dropped (Anthropic rejects empty text blocks) and a turn left empty is
//! skipped. Dropped as harmless: message `name`, image `detail`.
//! Must not reorder turns, invent content or echo client text in errors.

use serde_json::{Map, Value, json};

use super::content::{invalid, text_block, text_parts, unsupported, user_blocks};
use crate::providers::translate::TranslateError;

/// The translated conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// A string for one system text, text blocks for several, None for none.
    pub system: Option<Value>,
    /// Alternating `user` / `assistant` turns.
    pub messages: Vec<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

struct Turn {
    role: Role,
    blocks: Vec<Value>,
}

/// Translates the OpenAI `messages` array.
pub fn convert(messages: &[Value]) -> Result<Conversation, TranslateError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let m = m
            .as_object()
            .ok_or_else(|| invalid(i, "must be an object"))?;
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(i, "'role' must be a string"))?;
        match role {
            "system" | "developer" => text_parts(m.get("content"), i, &mut system)?,
            "user" => push(&mut turns, Role::User, user_blocks(m.get("content"), i)?),
            "assistant" => push(&mut turns, Role::Assistant, assistant_blocks(m, i)?),
            "tool" => push(&mut turns, Role::User, vec![tool_result(m, i)?]),
            "function" => return Err(unsupported("role `function` (legacy; use tools)")),
            _ => return Err(invalid(i, "unknown 'role'")),
        }
    }
    if turns.is_empty() {
        return Err(TranslateError::InvalidRequest(
            "messages must contain at least one non-empty user or assistant message".into(),
        ));
    }
    let system = match system.len() {
        0 => None,
        1 => system.pop().map(Value::String),
        _ => Some(Value::Array(
            system
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect(),
        )),
    };
    Ok(Conversation {
        system,
        messages: turns.into_iter().map(finish_turn).collect(),
    })
}

fn push(turns: &mut Vec<Turn>, role: Role, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.blocks.extend(blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

fn is_type(block: &Value, ty: &str) -> bool {
    block.get("type").and_then(Value::as_str) == Some(ty)
}

fn finish_turn(turn: Turn) -> Value {
    let Turn { role, mut blocks } = turn;
    let role = match role {
        Role::User => {
            // Anthropic: tool_result blocks come first in a user turn.
            let (mut results, rest): (Vec<Value>, Vec<Value>) =
                blocks.into_iter().partition(|b| is_type(b, "tool_result"));
            results.extend(rest);
            blocks = results;
            "user"
        }
        Role::Assistant => "assistant",
    };
    // One text block reads better as a plain string.
    if let [only] = blocks.as_mut_slice()
        && is_type(only, "text")
        && let Some(text) = only.get_mut("text").filter(|t| t.is_string())
    {
        return json!({"role": role, "content": text.take()});
    }
    json!({"role": role, "content": blocks})
}

fn assistant_blocks(m: &Map<String, Value>, i: usize) -> Result<Vec<Value>, TranslateError> {
    if m.get("function_call").is_some_and(|v| !v.is_null()) {
        return Err(unsupported(
            "assistant function_call (legacy; use tool_calls)",
        ));
    }
    let mut blocks = Vec::new();
    match m.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                blocks.push(text_block(s));
            }
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                let key = match part.get("type").and_then(Value::as_str) {
                    Some("text") => "text",
                    Some("refusal") => "refusal",
                    _ => return Err(invalid(i, "assistant parts must be text or refusal")),
                };
                let t = part
                    .get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(i, "assistant part without its text"))?;
                if !t.is_empty() {
                    blocks.push(text_block(t));
                }
            }
        }
        Some(_) => {
            return Err(invalid(
                i,
                "'content' must be a string or an array of parts",
            ));
        }
    }
    match m.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for call in calls {
                blocks.push(tool_use(call, i)?);
            }
        }
        Some(_) => return Err(invalid(i, "'tool_calls' must be an array")),
    }
    Ok(blocks)
}

fn tool_use(call: &Value, i: usize) -> Result<Value, TranslateError> {
    match call.get("type").and_then(Value::as_str) {
        None | Some("function") => {}
        Some(_) => return Err(unsupported("tool calls other than type function")),
    }
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(i, "tool call without an 'id' string"))?;
    let function = call
        .get("function")
        .ok_or_else(|| invalid(i, "tool call without 'function'"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(i, "tool call without a function name"))?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|_| invalid(i, "tool call arguments are not valid JSON"))?,
        Some(v) => v.clone(),
    };
    if !input.is_object() {
        return Err(invalid(i, "tool call arguments must be a JSON object"));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn tool_result(m: &Map<String, Value>, i: usize) -> Result<Value, TranslateError> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(i, "tool message without a 'tool_call_id' string"))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    let content = match m.get("content") {
        Some(Value::String(s)) if !s.is_empty() => Some(Value::String(s.clone())),
        Some(Value::Array(_)) => {
            let mut texts = Vec::new();
            text_parts(m.get("content"), i, &mut texts)?;
            (!texts.is_empty()).then(|| Value::Array(texts.iter().map(|t| text_block(t)).collect()))
        }
        None | Some(Value::Null) | Some(Value::String(_)) => None,
        Some(_) => {
            return Err(invalid(
                i,
                "'content' must be a string or an array of parts",
            ));
        }
    };
    if let (Some(content), Some(obj)) = (content, block.as_object_mut()) {
        obj.insert("content".into(), content);
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(messages: Value) -> Result<Conversation, TranslateError> {
        convert(messages.as_array().map(Vec::as_slice).unwrap_or_default())
    }

    #[test]
    fn plain_chat_and_system_prompt() {
        let c = conv(json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello, Claude"},
        ]))
        .unwrap();
        assert_eq!(c.system, Some(json!("You are terse.")));
        assert_eq!(
            c.messages,
            vec![json!({"role": "user", "content": "Hello, Claude"})]
        );
    }

    #[test]
    fn several_system_and_developer_messages_become_text_blocks() {
        let c = conv(json!([
            {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": "C"},
        ]))
        .unwrap();
        assert_eq!(
            c.system,
            Some(json!([
                {"type": "text", "text": "A"}, {"type": "text", "text": "B"}, {"type": "text", "text": "C"}
            ]))
        );
        assert_eq!(c.messages.len(), 1);
    }

    #[test]
    fn consecutive_same_role_turns_merge() {
        let c = conv(json!([
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
        ]))
        .unwrap();
        assert_eq!(
            c.messages,
            vec![
                json!({"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}),
                json!({"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            ]
        );
    }

    #[test]
    fn tool_call_round_trip() {
        let c = conv(json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "15 C"},
            {"role": "user", "content": "And?"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "20 C"}]},
        ]))
        .unwrap();
        assert_eq!(c.messages.len(), 3);
        assert_eq!(
            c.messages[1]["content"],
            json!([
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
            ])
        );
        // tool_result blocks first, then the user's text.
        assert_eq!(
            c.messages[2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "20 C"}]},
                {"type": "text", "text": "And?"},
            ]})
        );
    }

    #[test]
    fn bad_tool_arguments_are_invalid() {
        for args in ["{not json", "[1,2]"] {
            let r = conv(json!([
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [
                    {"id": "t", "type": "function", "function": {"name": "f", "arguments": args}}
                ]},
            ]));
            assert!(
                matches!(r, Err(TranslateError::InvalidRequest(_))),
                "{args}: {r:?}"
            );
        }
        let r = conv(json!([{"role": "tool", "content": "x"}]));
        assert!(matches!(r, Err(TranslateError::InvalidRequest(_))));
    }

    #[test]
    fn unsupported_and_invalid_messages() {
        let unsupported = |m: Value| matches!(conv(m), Err(TranslateError::Unsupported { .. }));
        assert!(unsupported(json!([{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]}])));
        assert!(unsupported(
            json!([{"role": "function", "name": "f", "content": "x"}])
        ));
        assert!(unsupported(
            json!([{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}])
        ));
        let invalid = |m: Value| matches!(conv(m), Err(TranslateError::InvalidRequest(_)));
        assert!(invalid(
            json!([{"role": "system", "content": "only a system prompt"}])
        ));
        assert!(invalid(json!([{"role": "wizard", "content": "x"}])));
        assert!(invalid(json!([{"role": "user", "content": 42}])));
        assert!(invalid(
            json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://a/b.png"}}]}])
        ));
    }
}
