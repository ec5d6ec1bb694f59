//! Messages request -> OpenAI chat request, for targets that do not speak
//! Messages natively.
//!
//! Place in the pipeline: called once per request by the Messages endpoint
//! when a target of the route is translated. Translates `system`,
//! `messages` (see [`super::blocks`]: system turns anywhere become system
//! messages in place), `tools` (custom tools), `tool_choice`,
//! `max_tokens` (as `max_completion_tokens`), `stop_sequences`,
//! `temperature`, `top_p`, `metadata.user_id` (as `user`), `stream` (with
//! usage asked for), `output_config.format` (json_schema, as
//! `response_format`), and the reasoning controls `thinking` (`enabled`
//! with `budget_tokens`, `adaptive`; `disabled` sends nothing) and
//! `output_config.effort`, plus `top_k` and `disable_parallel_tool_use`,
//! into [`ChatExt`] for the kinds that have them.
//!
//! Accepted without effect, and named in [`Translated::ignored`]:
//! `context_management` whose edits only clear thinking (chat targets keep
//! no thinking), `service_tier`, `cache_control` anywhere, thinking blocks
//! of earlier turns. What chat cannot express (server tools, other
//! context edits, `mcp_servers`, `container`, unknown fields) follows the
//! route's `unsupported:` choice: refused as [`MessagesError::Unsupported`]
//! naming it, or dropped and named. Content it cannot carry (documents,
//! file images) is always refused. Must not do I/O.

use serde_json::{Map, Value, json};

use super::MessagesError;
use super::blocks::{Tx, message, str_field, system_text};
use crate::api::chat::{ChatExt, ChatRequest, Reasoning, Translated};
use crate::config::Unsupported;

/// Fields copied under another name, or as they are.
const RENAMED: &[(&str, &str)] = &[
    ("max_tokens", "max_completion_tokens"),
    ("stop_sequences", "stop"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
];

/// The OpenAI chat request for `body`, or why it cannot be one.
pub fn to_chat(
    body: &Map<String, Value>,
    stream: bool,
    policy: Unsupported,
) -> Result<Translated, MessagesError> {
    let mut tx = Tx::new(policy);
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.into()));
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        let text = system_text(system, "system", &mut tx)?;
        messages.push(json!({"role": "system", "content": text}));
    }
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message(m, &mut messages, &mut tx)?;
    }
    if !messages.iter().any(|m| m["role"] != "system") {
        return Err(MessagesError::Invalid("`messages` is empty".into()));
    }
    out.insert("messages".into(), Value::Array(messages));
    let mut ext = ChatExt::default();
    let mut reasoning_from = Vec::new();
    for (key, value) in body {
        match key.as_str() {
            "model" | "system" | "messages" | "stream" => {}
            "tools" => {
                if let Some(tools) = tools(value, &mut tx)? {
                    out.insert("tools".into(), tools);
                }
            }
            "tool_choice" => {
                let (choice, no_parallel) = tool_choice(value)?;
                out.insert("tool_choice".into(), choice);
                ext.serial_tool_calls = no_parallel;
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("user".into(), user.clone());
                }
            }
            "top_k" if !value.is_null() => {
                let k = value
                    .as_u64()
                    .ok_or_else(|| MessagesError::Invalid("`top_k` must be an integer".into()))?;
                ext.top_k = Some(k);
            }
            "thinking" => {
                if let Some(r) = thinking(value)? {
                    reasoning_from.push("thinking");
                    // `output_config.effort` may have come first.
                    let cur = ext.reasoning.get_or_insert_with(Reasoning::default);
                    cur.budget_tokens = r.budget_tokens;
                    cur.adaptive = r.adaptive;
                    cur.show = r.show;
                }
            }
            "output_config" => {
                output_config(value, &mut out, &mut ext, &mut reasoning_from, &mut tx)?
            }
            "context_management" => context_management(value, &mut tx)?,
            "service_tier" => tx.ignored.field("service_tier"),
            "cache_control" => tx.ignored.field("cache_control"),
            _ if value.is_null() => {}
            k => match RENAMED.iter().find(|(from, _)| *from == k) {
                Some((_, to)) => {
                    out.insert((*to).into(), value.clone());
                }
                None => tx.unsupported(format!("the `{k}` field"), k, "unknown_field")?,
            },
        }
    }
    let had_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if had_tools
        && !out.contains_key("tools")
        && out.get("tool_choice").is_some_and(|c| c != "none")
    {
        // Every tool was dropped: nothing is left to choose.
        out.remove("tool_choice");
    }
    if stream {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let top_k_from = ext.top_k.map(|_| "top_k");
    ext.serial_tool_calls &= out.contains_key("tools");
    let serial_from = ext
        .serial_tool_calls
        .then_some("tool_choice.disable_parallel_tool_use");
    Ok(Translated {
        chat: ChatRequest {
            model: model.into(),
            stream,
            body: out.into(),
            wire_len: 0,
            ext,
        },
        ignored: tx.ignored,
        reasoning_from,
        top_k_from,
        serial_from,
    })
}

/// `thinking` as the reasoning asked for (`None`: disabled).
fn thinking(v: &Value) -> Result<Option<Reasoning>, MessagesError> {
    let show = v.get("display").and_then(Value::as_str) != Some("omitted");
    match v.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(None),
        Some("enabled") => {
            let budget = v
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    MessagesError::Invalid("`thinking.budget_tokens` must be an integer".into())
                })?;
            Ok(Some(Reasoning {
                budget_tokens: Some(budget),
                show,
                ..Reasoning::default()
            }))
        }
        Some("adaptive") => Ok(Some(Reasoning {
            adaptive: true,
            show,
            ..Reasoning::default()
        })),
        _ => Err(MessagesError::Invalid(
            "`thinking.type` must be enabled, adaptive or disabled".into(),
        )),
    }
}

/// `output_config`: `effort` joins the reasoning asked for, `format`
/// becomes `response_format`.
fn output_config(
    v: &Value,
    out: &mut Map<String, Value>,
    ext: &mut ChatExt,
    reasoning_from: &mut Vec<&'static str>,
    tx: &mut Tx,
) -> Result<(), MessagesError> {
    let Some(config) = v.as_object() else {
        return Err(MessagesError::Invalid(
            "`output_config` must be an object".into(),
        ));
    };
    for (key, value) in config {
        match key.as_str() {
            _ if value.is_null() => {}
            "effort" => {
                let effort = value.as_str().ok_or_else(|| {
                    MessagesError::Invalid("`output_config.effort` must be a string".into())
                })?;
                reasoning_from.push("output_config.effort");
                let r = ext.reasoning.get_or_insert_with(Reasoning::default);
                r.effort = Some(effort.to_string());
            }
            "format" => {
                if value.get("type").and_then(Value::as_str) != Some("json_schema") {
                    return Err(MessagesError::Invalid(
                        "`output_config.format.type` must be json_schema".into(),
                    ));
                }
                let schema = value
                    .get("schema")
                    .filter(|s| s.is_object())
                    .ok_or_else(|| {
                        MessagesError::Invalid("`output_config.format.schema` is required".into())
                    })?;
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema",
                           "json_schema": {"name": "output", "schema": schema}}),
                );
            }
            k => tx.unsupported(
                format!("the `output_config.{k}` field"),
                &format!("output_config.{k}"),
                "unknown_field",
            )?,
        }
    }
    Ok(())
}

/// `context_management`: edits that only clear thinking change nothing for
/// a chat target (it is sent no thinking); any other edit would.
fn context_management(v: &Value, tx: &mut Tx) -> Result<(), MessagesError> {
    let edits = v.get("edits").and_then(Value::as_array);
    let mut all_thinking = true;
    for e in edits.into_iter().flatten() {
        let kind = e.get("type").and_then(Value::as_str).unwrap_or("?");
        if !kind.starts_with("clear_thinking") {
            all_thinking = false;
            tx.unsupported(
                format!("the context edit `{kind}`"),
                &format!("context_management.edits:{kind}"),
                "context_management",
            )?;
        }
    }
    if all_thinking {
        tx.ignored.field("context_management");
    }
    Ok(())
}

/// Custom tools as function tools (`None` when every tool was dropped);
/// server tools follow the route's choice.
fn tools(v: &Value, tx: &mut Tx) -> Result<Option<Value>, MessagesError> {
    let list = v
        .as_array()
        .ok_or_else(|| MessagesError::Invalid("`tools` must be an array".into()))?;
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        if let Some(kind) = t.get("type").and_then(Value::as_str)
            && kind != "custom"
        {
            tx.unsupported(
                format!("the server tool `{kind}`"),
                &format!("tools:{kind}"),
                "tools",
            )?;
            continue;
        }
        if t.get("cache_control").is_some() {
            tx.ignored.field("cache_control");
        }
        let mut f = Map::new();
        f.insert("name".into(), Value::String(str_field(t, "name")?.into()));
        if let Some(d) = t.get("description") {
            f.insert("description".into(), d.clone());
        }
        let schema = t
            .get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        f.insert("parameters".into(), schema);
        if let Some(strict) = t.get("strict").filter(|s| s.is_boolean()) {
            f.insert("strict".into(), strict.clone());
        }
        out.push(json!({"type": "function", "function": f}));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// The chat `tool_choice`, and whether parallel calls are disabled.
fn tool_choice(v: &Value) -> Result<(Value, bool), MessagesError> {
    let no_parallel = v.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true);
    let choice = match v.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => json!({"type": "function", "function": {"name": str_field(v, "name")?}}),
        _ => return Err(MessagesError::Invalid("unknown `tool_choice.type`".into())),
    };
    Ok((choice, no_parallel))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
