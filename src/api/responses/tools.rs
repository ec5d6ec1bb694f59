//! The tools a Responses request offers, as chat tools, and the way back
//! for the calls.
//!
//! Place in the pipeline: [`super::request::to_chat`] turns the tools into
//! chat function tools; [`super::Echo`] keeps the [`ToolMap`] so the answer
//! translators ([`super::response`], [`super::stream`]) turn each chat tool
//! call back into the item the client expects. Tools come from the
//! top-level `tools` and from `additional_tools` input items (Codex sends
//! its tools that way); `namespace` tools are flattened into their own
//! tools (a name two namespaces share becomes `<namespace>__<name>`);
//! a `custom` (free-form) tool becomes a function with one string argument,
//! `input` (its grammar, if any, in the description), whose calls come back
//! as `custom_tool_call` items. Must not do I/O.

use serde_json::{Map, Value, json};

/// One tool as the request offers it, with the namespace it sits in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry<'a> {
    pub tool: &'a Value,
    pub namespace: Option<&'a str>,
}

/// Every tool `body` offers, namespaces flattened, in order.
pub(super) fn entries(body: &Map<String, Value>) -> Vec<Entry<'_>> {
    fn add<'a>(list: &'a Value, namespace: Option<&'a str>, out: &mut Vec<Entry<'a>>) {
        for t in list.as_array().into_iter().flatten() {
            if t.get("type").and_then(Value::as_str) == Some("namespace") {
                let name = t.get("name").and_then(Value::as_str);
                add(t.get("tools").unwrap_or(&Value::Null), name, out);
            } else {
                out.push(Entry { tool: t, namespace });
            }
        }
    }
    let mut out = Vec::new();
    if let Some(tools) = body.get("tools") {
        add(tools, None, &mut out);
    }
    for item in body
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("additional_tools"))
    {
        add(item.get("tools").unwrap_or(&Value::Null), None, &mut out);
    }
    out
}

fn kind(tool: &Value) -> &str {
    tool.get("type").and_then(Value::as_str).unwrap_or("")
}

fn name(tool: &Value) -> Option<&str> {
    tool.get("name").and_then(Value::as_str)
}

/// A tool the chat request names, and what it is to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// Its name in the chat request.
    pub chat: String,
    /// Its name to the client.
    pub name: String,
    pub namespace: Option<String>,
    /// A free-form `custom` tool (a function with one `input` string in chat).
    pub custom: bool,
}

/// The chat names of a request's function and custom tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolMap(Vec<Mapped>);

/// `<namespace>__<name>`, kept within a function name's alphabet and 64 bytes.
fn qualified(namespace: &str, name: &str) -> String {
    format!("{namespace}__{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

impl ToolMap {
    pub(super) fn of(entries: &[Entry<'_>]) -> ToolMap {
        let named: Vec<(&str, Option<&str>, bool)> = entries
            .iter()
            .filter_map(|e| match kind(e.tool) {
                "function" => Some((name(e.tool)?, e.namespace, false)),
                "custom" => Some((name(e.tool)?, e.namespace, true)),
                _ => None,
            })
            .collect();
        let mut out: Vec<Mapped> = Vec::with_capacity(named.len());
        for (n, namespace, custom) in &named {
            let shared = named.iter().filter(|(m, _, _)| m == n).count() > 1;
            let mut chat = match namespace {
                Some(ns) if shared => qualified(ns, n),
                _ => n.to_string(),
            };
            if out.iter().any(|m| m.chat == chat) {
                chat = format!("{chat}_{}", out.len());
            }
            out.push(Mapped {
                chat,
                name: n.to_string(),
                namespace: namespace.map(str::to_string),
                custom: *custom,
            });
        }
        ToolMap(out)
    }

    /// The chat name of the client's tool `name` in `namespace`.
    pub fn chat_name<'a>(&'a self, namespace: Option<&str>, name: &'a str) -> &'a str {
        self.0
            .iter()
            .find(|m| {
                m.name == name && (namespace.is_none() || m.namespace.as_deref() == namespace)
            })
            .map_or(name, |m| m.chat.as_str())
    }

    /// The client's tool a chat call of `chat` names.
    pub fn by_chat(&self, chat: &str) -> Option<&Mapped> {
        self.0.iter().find(|m| m.chat == chat)
    }
}

/// The chat tool for a function or custom `tool` (`None` for other kinds).
pub(super) fn chat_tool(tool: &Value, map: &ToolMap, namespace: Option<&str>) -> Option<Value> {
    let n = name(tool)?;
    let mut function = Map::new();
    function.insert("name".into(), json!(map.chat_name(namespace, n)));
    match kind(tool) {
        "function" => {
            for k in ["description", "parameters", "strict"] {
                if let Some(v) = tool.get(k).filter(|v| !v.is_null()) {
                    function.insert(k.into(), v.clone());
                }
            }
        }
        "custom" => {
            let mut about = tool
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let format = tool.get("format").unwrap_or(&Value::Null);
            if format.get("type").and_then(Value::as_str) == Some("grammar")
                && let Some(def) = format.get("definition").and_then(Value::as_str)
            {
                let syntax = format.get("syntax").and_then(Value::as_str).unwrap_or("");
                about.push_str(&format!(
                    "\n\nThe input follows this {syntax} grammar:\n{def}"
                ));
            }
            function.insert("description".into(), json!(about));
            function.insert(
                "parameters".into(),
                json!({"type": "object",
                       "properties": {"input": {"type": "string",
                                                "description": "The tool's free-form input."}},
                       "required": ["input"]}),
            );
        }
        _ => return None,
    }
    Some(json!({"type": "function", "function": function}))
}

/// A custom tool's input from the chat call's `arguments` (the `input`
/// string, or the arguments as they are when the model wrote no JSON).
pub fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(o)) => match o.get("input") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => arguments.to_string(),
        },
        _ => arguments.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_flatten_shared_names_qualify_and_custom_tools_wrap() {
        let body = json!({"tools": [
                {"type": "function", "name": "search", "parameters": {"type": "object"}},
                {"type": "web_search"},
                {"type": "namespace", "name": "docs.v1", "tools": [
                    {"type": "function", "name": "search", "parameters": {"type": "object"}}]}],
            "input": [{"type": "additional_tools", "role": "developer", "tools": [
                {"type": "namespace", "name": "functions", "tools": [
                    {"type": "custom", "name": "exec", "description": "Run code.",
                     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]}]}]});
        let body = body.as_object().unwrap();
        let entries = entries(body);
        assert_eq!(entries.len(), 4);
        let map = ToolMap::of(&entries);
        assert_eq!(map.chat_name(None, "search"), "search");
        assert_eq!(map.chat_name(Some("docs.v1"), "search"), "docs_v1__search");
        assert_eq!(map.chat_name(Some("functions"), "exec"), "exec");
        let exec = map.by_chat("exec").unwrap();
        assert!(exec.custom);
        assert_eq!(exec.namespace.as_deref(), Some("functions"));
        let t = chat_tool(entries[3].tool, &map, entries[3].namespace).unwrap();
        assert_eq!(t["function"]["name"], "exec");
        assert_eq!(t["function"]["parameters"]["required"], json!(["input"]));
        let about = t["function"]["description"].as_str().unwrap();
        assert!(about.starts_with("Run code.") && about.contains("lark grammar:\nstart: /.+/"));
        assert!(chat_tool(entries[1].tool, &map, None).is_none());
        assert_eq!(custom_input(r#"{"input":"ls -la"}"#), "ls -la");
        assert_eq!(custom_input("raw text"), "raw text");
    }
}
