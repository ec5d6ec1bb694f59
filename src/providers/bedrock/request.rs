//! OpenAI chat request body -> Converse / ConverseStream request body.
//!
//! Place in the pipeline: the adapter calls [`chat_request`] once per
//! attempt and sends the result to `converse_path(model, stream)`: the model
//! id and the streaming choice live in the URL, not the body.
//!
//! Translated: `messages` (see `messages`), `max_completion_tokens` /
//! `max_tokens` -> `inferenceConfig.maxTokens`, `temperature`, `top_p` ->
//! `topP`, `stop` -> `stopSequences`, `tools` (function) -> `toolConfig.tools`
//! (`toolSpec` with `inputSchema.json`), `tool_choice` auto / required /
//! named -> `auto` / `any` / `tool`; `tool_choice: "none"` leaves the tools
//! out (the model then cannot call one), which Converse refuses when the
//! history holds tool calls, so that case is Unsupported. A history with
//! tool calls but no `tools` is sent as it is (Converse answers a
//! ValidationException: it wants a `toolConfig` then).
//!
//! `reasoning_effort` (or a translated request's reasoning) and `top_k` ->
//! `additionalModelRequestFields` for the model families that take them
//! (see [`super::thinking`]).
//!
//! Unsupported (would change the answer): `n` > 1, `response_format` other
//! than `text`, non-zero `presence_penalty` / `frequency_penalty`,
//! `logprobs`, `top_logprobs`, `logit_bias`, `parallel_tool_calls: false`,
//! `modalities` other than text, `audio`, `prediction`, `reasoning_effort`
//! and `top_k` for a model that takes none,
//! `web_search_options`, `functions` / `function_call`, non-function tools,
//! and any field not listed here. Dropped as harmless: `user`, `metadata`,
//! `store`, `seed`, `service_tier`, `safety_identifier`, `prompt_cache_key`,
//! a tool's `strict` flag, `stream_options` (read by the adapter), explicit
//! `null`s.

use serde_json::{Map, Value, json};

use super::messages::convert_messages;
use super::thinking::extra;
use super::{invalid, unsupported};
use crate::api::chat::ChatExt;
use crate::providers::translate::TranslateError;

/// Per-provider knobs for chat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BedrockChatSettings {
    /// `maxTokens` when the client sets none. `None` sends none, and the
    /// model's own default applies.
    pub default_max_tokens: Option<u64>,
}

const DROPPED: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "seed",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// Translates an OpenAI chat body for upstream model `model`.
pub fn chat_request(
    body: &Map<String, Value>,
    model: &str,
    settings: &BedrockChatSettings,
) -> Result<Value, TranslateError> {
    chat_request_ext(body, &ChatExt::default(), model, settings)
}

/// [`chat_request`] for a request with a translation's extension.
pub fn chat_request_ext(
    body: &Map<String, Value>,
    ext: &ChatExt,
    model: &str,
    settings: &BedrockChatSettings,
) -> Result<Value, TranslateError> {
    if model.is_empty() {
        return Err(invalid("the upstream model id is empty"));
    }
    let mut inference = inference_config(body, settings)?;
    let max = inference.get("maxTokens").and_then(Value::as_u64);
    let extra = extra(body, ext, model, max);
    for (key, value) in body {
        match key.as_str() {
            "reasoning_effort" if extra.reasoning || value == "none" => {}
            "top_k" if extra.top_k => {}
            _ => check_field(key, value)?,
        }
    }
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => return Err(invalid("'messages' must be a non-empty array")),
    };
    let converted = convert_messages(messages)?;

    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(converted.messages));
    if !converted.system.is_empty() {
        out.insert("system".into(), Value::Array(converted.system));
    }
    if let Some(max) = extra.max_tokens {
        inference.insert("maxTokens".into(), max.into());
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tools) = tool_config(body, converted.has_tool_blocks)? {
        out.insert("toolConfig".into(), tools);
    }
    if !extra.fields.is_empty() {
        out.insert(
            "additionalModelRequestFields".into(),
            Value::Object(extra.fields),
        );
    }
    Ok(Value::Object(out))
}

fn is_zero(v: &Value) -> bool {
    v.as_f64() == Some(0.0)
}

/// Refuses fields Converse cannot express; everything else is handled below
/// or harmless.
fn check_field(key: &str, value: &Value) -> Result<(), TranslateError> {
    if value.is_null() || DROPPED.contains(&key) {
        return Ok(());
    }
    let ok = match key {
        "messages"
        | "max_tokens"
        | "max_completion_tokens"
        | "temperature"
        | "top_p"
        | "stop"
        | "tools"
        | "tool_choice" => true,
        "n" => value.as_u64() == Some(1),
        "presence_penalty" | "frequency_penalty" => is_zero(value),
        "logprobs" => value == &Value::Bool(false),
        "logit_bias" => value.as_object().is_some_and(Map::is_empty),
        "parallel_tool_calls" => value == &Value::Bool(true),
        "modalities" => value == &json!(["text"]),
        "response_format" => value.get("type").and_then(Value::as_str) == Some("text"),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(unsupported(match key {
        "n" => "n > 1".to_string(),
        "response_format" => {
            let ty = value.get("type").and_then(Value::as_str).unwrap_or("?");
            format!("response_format \"{ty}\"")
        }
        "parallel_tool_calls" => "parallel_tool_calls: false".to_string(),
        other => other.to_string(),
    }))
}

fn number(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, TranslateError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
        Some(_) => Err(invalid(format!("'{key}' must be a number"))),
    }
}

fn inference_config(
    body: &Map<String, Value>,
    settings: &BedrockChatSettings,
) -> Result<Map<String, Value>, TranslateError> {
    let mut config = Map::new();
    let max = match (
        body.get("max_completion_tokens").filter(|v| !v.is_null()),
        body.get("max_tokens").filter(|v| !v.is_null()),
    ) {
        (Some(v), _) | (None, Some(v)) => match v.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => return Err(invalid("'max_tokens' must be a positive integer")),
        },
        (None, None) => settings.default_max_tokens,
    };
    if let Some(max) = max {
        config.insert("maxTokens".into(), max.into());
    }
    if let Some(t) = number(body, "temperature")? {
        config.insert("temperature".into(), t);
    }
    if let Some(p) = number(body, "top_p")? {
        config.insert("topP".into(), p);
    }
    let stops: Vec<Value> = match body.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        Some(_) => return Err(invalid("'stop' must be a string or an array of strings")),
    };
    if !stops.is_empty() {
        config.insert("stopSequences".into(), Value::Array(stops));
    }
    Ok(config)
}

/// `toolConfig`, or `None` when the request offers no tools (or forbids
/// their use with `tool_choice: "none"`).
fn tool_config(
    body: &Map<String, Value>,
    has_tool_blocks: bool,
) -> Result<Option<Value>, TranslateError> {
    let tools = match body.get("tools") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("'tools' must be an array")),
    };
    let specs = tools.iter().map(tool_spec).collect::<Result<Vec<_>, _>>()?;
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({ "auto": {} })),
            "required" => Some(json!({ "any": {} })),
            "none" if has_tool_blocks && !specs.is_empty() => {
                return Err(unsupported(
                    "tool_choice \"none\" with tool calls in the conversation",
                ));
            }
            "none" => return Ok(None),
            other => return Err(invalid(format!("unknown tool_choice \"{other}\""))),
        },
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.function.name is missing"))?;
            if !specs.iter().any(|s| s["toolSpec"]["name"] == name) {
                return Err(invalid(format!(
                    "tool_choice names unknown tool \"{name}\""
                )));
            }
            Some(json!({ "tool": { "name": name } }))
        }
        Some(_) => return Err(unsupported("this form of tool_choice")),
    };
    if specs.is_empty() {
        if choice.as_ref().is_some_and(|c| c.get("auto").is_none()) {
            return Err(invalid("tool_choice requires 'tools'"));
        }
        return Ok(None);
    }
    let mut config = json!({ "tools": specs });
    if let Some(choice) = choice {
        config["toolChoice"] = choice;
    }
    Ok(Some(config))
}

fn tool_spec(tool: &Value) -> Result<Value, TranslateError> {
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err(unsupported("tools of a type other than \"function\""));
    }
    let f = tool
        .get("function")
        .ok_or_else(|| invalid("tool without 'function'"))?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("tool without 'function.name'"))?;
    let schema = match f.get("parameters") {
        None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
        Some(p) => p.clone(),
    };
    let mut spec = json!({ "name": name, "inputSchema": { "json": schema } });
    if let Some(d) = f.get("description").and_then(Value::as_str) {
        spec["description"] = Value::String(d.to_string());
    }
    Ok(json!({ "toolSpec": spec }))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
