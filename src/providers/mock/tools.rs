//! The mock's tool calls: whether an answer calls a tool, which, and with
//! what.
//!
//! Place in the pipeline: used by the mock's chat answers (`chat.rs`).
//! Tools are chat `function` tools and chat `custom` tools (free-form
//! input). `tool_choice` `none` calls nothing, `required` the first tool, a
//! named tool that one; `auto` (the default) calls nothing once the last
//! message is a tool result, else the first tool the last user message
//! names as a word (then as part of a word), or a weather tool when it asks
//! about the weather. Arguments: example values from the function's
//! schema, except that the prompt's first `backquoted` text, when it has
//! one, goes into the first required string argument (a custom tool's
//! input is that text, or `example`). So a prompt like "Use the Read tool
//! on `/tmp/a.txt`" makes a coding agent run a real tool turn.
//! Deterministic; must not do I/O.

use serde_json::{Map, Value};

use super::schema::example;

/// A tool's input kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// JSON arguments (`function` tools).
    Function,
    /// Free-form text input (`custom` tools).
    Custom,
}

/// The tool an answer calls.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolCall {
    pub name: String,
    pub kind: Kind,
    /// The arguments as JSON text (function) or the raw input (custom).
    pub input: String,
}

/// One tool the request defines.
struct Tool<'a> {
    name: &'a str,
    kind: Kind,
    description: &'a str,
    parameters: &'a Value,
}

fn tools(body: &Map<String, Value>) -> Vec<Tool<'_>> {
    let Some(list) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|t| {
            let (kind, def) = match t.get("type").and_then(Value::as_str) {
                Some("custom") => (Kind::Custom, t.get("custom")?),
                _ => (Kind::Function, t.get("function")?),
            };
            Some(Tool {
                name: def.get("name")?.as_str()?,
                kind,
                description: def.get("description").and_then(Value::as_str).unwrap_or(""),
                parameters: def.get("parameters").unwrap_or(&Value::Null),
            })
        })
        .collect()
}

/// The tool the answer to `body` calls, if any; `prompt` is the last
/// user message's text.
pub(super) fn tool_to_call(body: &Map<String, Value>, prompt: &str) -> Option<ToolCall> {
    let defined = tools(body);
    let chosen = match body.get("tool_choice") {
        Some(Value::String(c)) if c == "none" => None,
        Some(Value::String(c)) if c == "required" => defined.first(),
        Some(Value::Object(c)) => {
            let named = c
                .get("function")
                .or_else(|| c.get("custom"))
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            defined.iter().find(|t| t.name == named)
        }
        // `auto`: once a tool has answered, the model answers in text.
        _ if last_tool_result(body).is_some() => None,
        _ => named_in(&defined, prompt),
    }?;
    let quoted = backquoted(prompt);
    let input = match chosen.kind {
        Kind::Custom => quoted.unwrap_or("example").to_string(),
        Kind::Function => {
            let mut args = example(chosen.parameters);
            if let (Some(text), Some(key), Some(obj)) = (
                quoted,
                first_string_arg(chosen.parameters),
                args.as_object_mut(),
            ) {
                obj.insert(key.to_string(), Value::String(text.to_string()));
            }
            args.to_string()
        }
    };
    Some(ToolCall {
        name: chosen.name.to_string(),
        kind: chosen.kind,
        input,
    })
}

/// The first tool `prompt` names as a word, else as part of a word, else
/// a weather tool for a question about the weather.
fn named_in<'t, 'a>(defined: &'t [Tool<'a>], prompt: &str) -> Option<&'t Tool<'a>> {
    let asked = prompt.to_lowercase();
    let words: Vec<&str> = asked
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let lower = |t: &Tool| t.name.to_lowercase();
    defined
        .iter()
        .find(|t| words.contains(&lower(t).as_str()))
        .or_else(|| defined.iter().find(|t| asked.contains(&lower(t))))
        .or_else(|| {
            defined.iter().find(|t| {
                let about = format!("{} {}", lower(t), t.description.to_lowercase());
                asked.contains("weather") && about.contains("weather")
            })
        })
}

/// The first text of `prompt` between backquotes.
fn backquoted(prompt: &str) -> Option<&str> {
    let (_, rest) = prompt.split_once('`')?;
    let (text, _) = rest.split_once('`')?;
    (!text.is_empty()).then_some(text)
}

/// The first required (else the first) string property of a schema.
fn first_string_arg(schema: &Value) -> Option<&str> {
    let props = schema.get("properties")?.as_object()?;
    let is_string =
        |k: &str| props.get(k).and_then(|p| p.get("type")) == Some(&Value::from("string"));
    let required = schema.get("required").and_then(Value::as_array);
    match required {
        Some(r) => r.iter().filter_map(Value::as_str).find(|k| is_string(k)),
        None => props.keys().map(String::as_str).find(|k| is_string(k)),
    }
}

/// The content of a `tool` message after the last user message.
pub(super) fn last_tool_result(body: &Map<String, Value>) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn agent_tools() -> Value {
        json!([
            {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object",
                "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
                "required": ["command"]}}},
            {"type": "function", "function": {"name": "Read", "parameters": {"type": "object",
                "properties": {"limit": {"type": "integer"}, "file_path": {"type": "string"}},
                "required": ["file_path"]}}},
            {"type": "custom", "custom": {"name": "exec", "description": "Run JavaScript",
                "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}},
        ])
    }

    #[test]
    fn the_named_tool_is_called_with_the_backquoted_text() {
        let b = body(json!({"tools": agent_tools()}));
        let call = tool_to_call(&b, "Use the Read tool on `/tmp/hello.txt` please").unwrap();
        assert_eq!(call.name, "Read");
        assert_eq!(call.kind, Kind::Function);
        let args: Value = serde_json::from_str(&call.input).unwrap();
        assert_eq!(args, json!({"file_path": "/tmp/hello.txt"}));
        // A custom tool gets the text as its input.
        let call = tool_to_call(&b, "Use the exec tool to run `text(1 + 1)`.").unwrap();
        assert_eq!((call.name.as_str(), call.kind), ("exec", Kind::Custom));
        assert_eq!(call.input, "text(1 + 1)");
        // Whole words first: "bashful" does not name Bash, "read" does.
        let call = tool_to_call(&b, "a bashful read").unwrap();
        assert_eq!(call.name, "Read");
        assert!(tool_to_call(&b, "hello there").is_none());
    }

    #[test]
    fn choices_and_tool_results_decide_whether_a_tool_is_called() {
        let b = body(json!({"tools": agent_tools(), "tool_choice": "required"}));
        assert_eq!(tool_to_call(&b, "hi").unwrap().name, "Bash");
        let b = body(json!({"tools": agent_tools(),
            "tool_choice": {"type": "custom", "custom": {"name": "exec"}}}));
        assert_eq!(tool_to_call(&b, "hi").unwrap().input, "example");
        let b = body(json!({"tools": agent_tools(), "tool_choice": "none"}));
        assert!(tool_to_call(&b, "use Read").is_none());
        let b = body(json!({"tools": agent_tools(), "messages": [
            {"role": "user", "content": "use Read"},
            {"role": "assistant", "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": "hello"}]}));
        assert!(tool_to_call(&b, "use Read").is_none());
        assert_eq!(last_tool_result(&b).as_deref(), Some("hello"));
    }
}
