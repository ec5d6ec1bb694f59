//! OpenAI `tools` / `tool_choice` / `parallel_tool_calls` -> Anthropic
//! `tools` and `tool_choice`.
//!
//! Place in the pipeline: called by [`super::request::chat_request`] only.
//! Function tools become `{name, description, input_schema}` (`parameters`,
//! with `type: object` added when left out; `strict` only passes when
//! structured outputs are enabled). `auto` -> `{type: auto}`, `required` ->
//! `{type: any}`, `none` -> `{type: none}`, a named function ->
//! `{type: tool, name}`; `parallel_tool_calls: false` ->
//! `disable_parallel_tool_use: true` (with `auto` when no choice was given).
//! `tool_choice` `auto`/`none` without tools is dropped; `required` or a
//! named function without (that) tool is invalid. Other tool types and
//! `allowed_tools` are refused as unsupported. Must not echo client values.

use serde_json::{Map, Value, json};

use super::{AnthropicChatSettings, KIND};
use crate::providers::translate::TranslateError;

fn unsupported(feature: &str) -> TranslateError {
    TranslateError::Unsupported {
        kind: KIND,
        feature: feature.to_string(),
    }
}

fn invalid(message: &str) -> TranslateError {
    TranslateError::InvalidRequest(message.to_string())
}

/// A field that is present and not `null`.
fn field<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

pub(super) fn tools(
    body: &Map<String, Value>,
    settings: &AnthropicChatSettings,
) -> Result<Option<Vec<Value>>, TranslateError> {
    let list = match field(body, "tools") {
        None => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("'tools' must be an array")),
    };
    if list.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(list.len());
    for tool in list {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(_) => return Err(unsupported("tools other than type function")),
            None => return Err(invalid("every tool needs a 'type'")),
        }
        let f = tool
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("function tool without 'function'"))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("function tool without a 'name' string"))?;
        let mut schema = match f.get("parameters") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(invalid("tool 'parameters' must be a JSON Schema object")),
        };
        // Anthropic requires input_schema.type; OpenAI allows leaving it out.
        schema
            .entry("type")
            .or_insert_with(|| Value::String("object".into()));
        let mut t = Map::new();
        t.insert("name".into(), Value::String(name.to_string()));
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            t.insert("description".into(), Value::String(d.to_string()));
        }
        t.insert("input_schema".into(), Value::Object(schema));
        if settings.structured_outputs && f.get("strict") == Some(&Value::Bool(true)) {
            t.insert("strict".into(), Value::Bool(true));
        }
        out.push(Value::Object(t));
    }
    Ok(Some(out))
}

pub(super) fn tool_choice(
    body: &Map<String, Value>,
    serial: bool,
    tools: Option<&[Value]>,
) -> Result<Option<Value>, TranslateError> {
    let parallel = match field(body, "parallel_tool_calls") {
        None => !serial,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("'parallel_tool_calls' must be a boolean")),
    };
    let choice = match field(body, "tool_choice") {
        None if tools.is_some() && !parallel => json!({"type": "auto"}),
        None => return Ok(None),
        Some(Value::String(s)) => match (s.as_str(), tools.is_some()) {
            ("auto" | "none", false) => return Ok(None),
            ("auto", true) => json!({"type": "auto"}),
            ("none", true) => return Ok(Some(json!({"type": "none"}))),
            ("required", true) => json!({"type": "any"}),
            ("required", false) => return Err(invalid("tool_choice 'required' needs 'tools'")),
            _ => {
                return Err(invalid(
                    "'tool_choice' must be none, auto, required or a named function",
                ));
            }
        },
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("named tool_choice without a function name"))?;
                let known = tools.is_some_and(|ts| {
                    ts.iter()
                        .any(|t| t.get("name").and_then(Value::as_str) == Some(name))
                });
                if !known {
                    return Err(invalid(
                        "tool_choice names a function that is not in 'tools'",
                    ));
                }
                json!({"type": "tool", "name": name})
            }
            Some("allowed_tools") => return Err(unsupported("tool_choice allowed_tools")),
            _ => return Err(invalid("'tool_choice' object must have type function")),
        },
        Some(_) => return Err(invalid("'tool_choice' must be a string or an object")),
    };
    let mut choice = choice;
    if !parallel && let Some(o) = choice.as_object_mut() {
        o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
    Ok(Some(choice))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::anthropic::chat_request;

    fn req(body: Value) -> Result<Value, TranslateError> {
        req_with(body, &AnthropicChatSettings::default())
    }

    fn req_with(body: Value, s: &AnthropicChatSettings) -> Result<Value, TranslateError> {
        let Value::Object(body) = body else {
            panic!("test body must be an object")
        };
        chat_request(&body, "claude-sonnet-4-5", s)
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = json!([{"type": "function", "function": {
            "name": "get_weather", "description": "Get the current weather in a given location",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
            "strict": true,
        }}, {"type": "function", "function": {"name": "now"}}]);
        let body = |choice: Value, parallel: Value| {
            json!({"messages": [{"role": "user", "content": "x"}], "tools": tools,
                   "tool_choice": choice, "parallel_tool_calls": parallel})
        };
        let out = req(body(json!("auto"), Value::Null)).unwrap();
        assert_eq!(
            out["tools"],
            json!([
                {"name": "get_weather", "description": "Get the current weather in a given location",
                 "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}},
                {"name": "now", "input_schema": {"type": "object"}},
            ])
        );
        assert_eq!(out["tool_choice"], json!({"type": "auto"}));
        let choice = |c: Value, p: Value| req(body(c, p)).unwrap()["tool_choice"].clone();
        assert_eq!(
            choice(json!("required"), Value::Null),
            json!({"type": "any"})
        );
        assert_eq!(choice(json!("none"), json!(false)), json!({"type": "none"}));
        assert_eq!(
            choice(
                json!({"type": "function", "function": {"name": "now"}}),
                json!(false)
            ),
            json!({"type": "tool", "name": "now", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            choice(Value::Null, json!(false)),
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(choice(Value::Null, json!(true)), Value::Null);
        let r = req(body(
            json!({"type": "function", "function": {"name": "other"}}),
            Value::Null,
        ));
        assert!(matches!(r, Err(TranslateError::InvalidRequest(_))));
        // Structured outputs enabled: strict passes through.
        let s = AnthropicChatSettings {
            structured_outputs: true,
            ..Default::default()
        };
        let out = req_with(body(json!("auto"), Value::Null), &s).unwrap();
        assert_eq!(out["tools"][0]["strict"], true);
        assert!(out["tools"][1].get("strict").is_none());
    }

    #[test]
    fn tool_choice_without_tools() {
        let body =
            |c: Value| json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": c});
        assert!(
            req(body(json!("auto")))
                .unwrap()
                .get("tool_choice")
                .is_none()
        );
        assert!(
            req(body(json!("none")))
                .unwrap()
                .get("tool_choice")
                .is_none()
        );
        let r = req(body(json!("required")));
        assert!(matches!(r, Err(TranslateError::InvalidRequest(_))));
    }

    #[test]
    fn custom_tools_and_allowed_tools_are_unsupported() {
        let custom = json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "custom", "custom": {"name": "x"}}]});
        assert!(matches!(
            req(custom),
            Err(TranslateError::Unsupported { .. })
        ));
        let allowed = json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}});
        assert!(matches!(
            req(allowed),
            Err(TranslateError::Unsupported { .. })
        ));
    }
}
