//! Responses API request -> chat completions request.
//!
//! Place in the pipeline: called once per client request by `server` when a
//! route has a target that does not pass `/responses` through; the chat
//! request it makes is sent to each such target as any chat request is.
//! Translates `input` (see [`super::input`]), `instructions`, function
//! and custom tools, in namespaces or not, from `tools` and
//! `additional_tools` items (see [`super::tools`]), `tool_choice`,
//! `temperature`, `top_p`, `user`,
//! `max_output_tokens` (as `max_completion_tokens`), `text.format`, and
//! into [`ChatExt`] for the kinds that have them `reasoning.effort` and
//! `parallel_tool_calls: false` (`true` is every kind's default).
//!
//! Accepted without effect on a stateless answer, and named in
//! [`Translated::ignored`]: `client_metadata`, `metadata`,
//! `prompt_cache_key`, `prompt_cache_retention`, `prompt_cache_options`,
//! `service_tier`, `safety_identifier`, `text.verbosity`, `include` values
//! naming content a chat target does not produce (encrypted reasoning,
//! built-in tools' results, input image URLs), and reasoning items of
//! earlier turns, `reasoning` settings other than effort and summary.
//! Built-in tools (web search, file search, code interpreter, MCP,
//! computer use, ...), tool choices among them and unknown fields follow
//! the route's `unsupported:` choice:
//! refused by name, or dropped and named. What needs the provider's stored
//! state (`previous_response_id`, `conversation`, `prompt`, `store: true`,
//! `background: true`) and log probabilities are always refused.

use serde_json::{Map, Value, json};

use super::input::{messages, str_field};
use super::tools::{ToolMap, chat_tool, entries};
use super::{ResponsesError, invalid, unsupported};
use crate::api::chat::{ChatExt, ChatRequest, Reasoning, Translated};
use crate::api::ignored::Ignored;
use crate::config::Unsupported;

/// Top-level fields with no meaning for a stateless chat target when set.
const STATEFUL: &[&str] = &["previous_response_id", "conversation", "prompt"];

/// Copied to the chat request under the same name when present.
const SAME_NAME: &[&str] = &["temperature", "top_p", "user"];

/// Metadata with no effect on a stateless answer: accepted, not sent.
const METADATA: &[&str] = &[
    "client_metadata",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "service_tier",
    "safety_identifier",
];

/// Read here, or nothing to translate.
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
    "store",
    "background",
    "include",
    "truncation",
    "reasoning",
    "parallel_tool_calls",
];

/// `include` values naming content a chat target does not produce.
const NOT_PRODUCED: &[&str] = &[
    "reasoning.encrypted_content",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
    "message.input_image.image_url",
];

/// The translation's running state.
struct Tx {
    policy: Unsupported,
    ignored: Ignored,
}

impl Tx {
    /// Refused (`what` names it), or dropped and named `name`.
    fn unsupported(
        &mut self,
        what: String,
        name: &str,
        label: &'static str,
    ) -> Result<(), ResponsesError> {
        match self.policy {
            Unsupported::Reject => Err(unsupported(what)),
            Unsupported::Drop => {
                self.ignored.add(name, label);
                Ok(())
            }
        }
    }
}

/// The chat request for `body` (a `/v1/responses` body).
pub fn to_chat(
    body: &Map<String, Value>,
    policy: Unsupported,
) -> Result<Translated, ResponsesError> {
    let mut tx = Tx {
        policy,
        ignored: Ignored::default(),
    };
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
    if let Some(t) = body.get("truncation").and_then(Value::as_str)
        && t != "disabled"
    {
        return Err(unsupported(format!("`truncation: {t}`")));
    }
    for (k, v) in body {
        if v.is_null() || HANDLED.contains(&k.as_str()) || SAME_NAME.contains(&k.as_str()) {
            continue;
        }
        match METADATA.iter().find(|m| **m == k) {
            Some(m) => tx.ignored.field(m),
            None => tx.unsupported(format!("the `{k}` field"), k, "unknown_field")?,
        }
    }
    include(body.get("include"), &mut tx)?;
    let offered = entries(body);
    let map = ToolMap::of(&offered);
    let mut chat = Map::new();
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    chat.insert("model".into(), model.clone());
    chat.insert(
        "messages".into(),
        Value::Array(messages(body, &map, &mut tx.ignored)?),
    );
    for k in SAME_NAME {
        if let Some(v) = body.get(*k).filter(|v| !v.is_null()) {
            chat.insert((*k).to_string(), v.clone());
        }
    }
    if let Some(v) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_completion_tokens".into(), v.clone());
    }
    let mut ext = ChatExt::default();
    let mut reasoning_from = Vec::new();
    if let Some(r) = reasoning(body.get("reasoning"), &mut tx)? {
        // A summary alone asks for reasoning at the model's default effort.
        reasoning_from.push(if r.effort.is_some() {
            "reasoning.effort"
        } else {
            "reasoning.summary"
        });
        ext.reasoning = Some(r);
    }
    let mut tools = Vec::with_capacity(offered.len());
    for e in &offered {
        match chat_tool(e.tool, &map, e.namespace) {
            Some(t) => tools.push(t),
            None => {
                let kind = e.tool.get("type").and_then(Value::as_str).unwrap_or("");
                if matches!(kind, "function" | "custom") {
                    return Err(invalid("each tool needs a 'name'."));
                }
                let what = format!(
                    "the built-in tool `{kind}` (only function and custom tools can be translated)"
                );
                tx.unsupported(what, &format!("tools:{kind}"), "tools")?;
            }
        }
    }
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
    }
    ext.serial_tool_calls =
        body.get("parallel_tool_calls") == Some(&Value::Bool(false)) && chat.contains_key("tools");
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null())
        && let Some(choice) = tool_choice(choice, &map, &mut tx)?
    {
        chat.insert("tool_choice".into(), choice);
    }
    let had_tools = !offered.is_empty();
    if had_tools
        && !chat.contains_key("tools")
        && chat.get("tool_choice").is_some_and(|c| c != "none")
    {
        // Every tool was dropped: nothing is left to choose.
        chat.remove("tool_choice");
    }
    if let Some(format) = body
        .get("text")
        .map(|t| text(t, &mut tx))
        .transpose()?
        .flatten()
    {
        chat.insert("response_format".into(), format);
    }
    let stream = body.get("stream") == Some(&Value::Bool(true));
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let ext_serial = ext.serial_tool_calls;
    Ok(Translated {
        chat: ChatRequest {
            model: model.as_str().unwrap_or_default().to_string(),
            stream,
            body: chat.into(),
            wire_len: 0,
            ext,
        },
        ignored: tx.ignored,
        reasoning_from,
        top_k_from: None,
        serial_from: ext_serial.then_some("parallel_tool_calls"),
    })
}

/// `include`: values naming content a chat target does not produce are
/// ignored; log probabilities are refused; anything else follows the route.
fn include(v: Option<&Value>, tx: &mut Tx) -> Result<(), ResponsesError> {
    let Some(values) = v.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let values = values
        .as_array()
        .ok_or_else(|| invalid("'include' must be an array of strings."))?;
    for value in values {
        let value = value
            .as_str()
            .ok_or_else(|| invalid("'include' must be an array of strings."))?;
        if NOT_PRODUCED.contains(&value) {
            tx.ignored.add(format!("include:{value}"), "include");
        } else if value == "message.output_text.logprobs" {
            return Err(unsupported(format!("`include` of {value}")));
        } else {
            tx.unsupported(
                format!("`include` of {value}"),
                &format!("include:{value}"),
                "include",
            )?;
        }
    }
    Ok(())
}

/// `reasoning` as the reasoning asked for (`None`: none, or effort
/// `none`); its other settings (Codex's `context`) are named.
fn reasoning(v: Option<&Value>, tx: &mut Tx) -> Result<Option<Reasoning>, ResponsesError> {
    let Some(r) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(o) = r.as_object() else {
        return Err(invalid("'reasoning' must be an object."));
    };
    for (k, v) in o {
        if !v.is_null() && !matches!(k.as_str(), "effort" | "summary" | "generate_summary") {
            tx.ignored.add(format!("reasoning.{k}"), "reasoning");
        }
    }
    let effort = match r.get("effort") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if e == "none" => return Ok(None),
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => return Err(invalid("'reasoning.effort' must be a string.")),
    };
    Ok(Some(Reasoning {
        effort,
        show: true,
        ..Reasoning::default()
    }))
}

fn tool_choice(
    choice: &Value,
    map: &ToolMap,
    tx: &mut Tx,
) -> Result<Option<Value>, ResponsesError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(choice.clone()))
        }
        Value::Object(o)
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("function" | "custom")
            ) =>
        {
            let namespace = o.get("namespace").and_then(Value::as_str);
            let name = map.chat_name(namespace, str_field(choice, "name")?);
            Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            ))
        }
        other => {
            let kind = other.get("type").and_then(Value::as_str).unwrap_or("?");
            tx.unsupported(
                format!("`tool_choice` {other}"),
                &format!("tool_choice:{kind}"),
                "tool_choice",
            )?;
            Ok(None)
        }
    }
}

/// `text.format` as a chat `response_format` (`None` for plain text);
/// `text.verbosity` is named, not sent.
fn text(text: &Value, tx: &mut Tx) -> Result<Option<Value>, ResponsesError> {
    if let Value::Object(o) = text {
        for (k, v) in o {
            match k.as_str() {
                _ if v.is_null() => {}
                "format" => {}
                "verbosity" => tx.ignored.add("text.verbosity", "text.verbosity"),
                k => {
                    tx.unsupported(format!("`text.{k}`"), &format!("text.{k}"), "unknown_field")?
                }
            }
        }
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
