//! OpenAI chat request body -> Anthropic Messages API request body.
//!
//! Place in the pipeline: called once per attempt before the upstream call,
//! with `model` already resolved to the upstream model name. Translated:
//! `messages` (see [`super::messages`]), `max_completion_tokens` /
//! `max_tokens` (else the configured default; Anthropic requires it),
//! `temperature` (0..=1 only), `top_p`, `top_k` (a common extension, or a
//! translated request's; left out when thinking is sent, as Anthropic
//! refuses both), `stop` -> `stop_sequences`, `stream`, `user` (or
//! `safety_identifier`) -> `metadata.user_id`, `tools` (function),
//! `tool_choice`, `parallel_tool_calls: false` ->
//! `disable_parallel_tool_use`, `reasoning_effort` (or a translated
//! request's reasoning) -> `thinking` (see [`super::thinking`]), and
//! `response_format` `text` (nothing to send) or `json_schema` (structured
//! outputs, only when [`AnthropicChatSettings::structured_outputs`]).
//!
//! Refused as [`TranslateError::Unsupported`] because they would change the
//! answer: `n` > 1, `logprobs`, `top_logprobs`, `logit_bias`, non-zero
//! `presence_penalty` / `frequency_penalty`, `response_format` `json_object`
//! (and `json_schema` unless enabled), `audio` / audio `modalities`,
//! `prediction`, `web_search_options`, `verbosity`, legacy `functions` /
//! `function_call`, `temperature` above 1.
//!
//! Dropped as harmless: `seed`, `store`, `metadata`, `service_tier`,
//! `prompt_cache_key`, `stream_options` (the gateway reads `include_usage`
//! itself; Anthropic streams always report usage), `tools[].function.strict`
//! unless structured outputs are enabled, and any unknown field (Anthropic
//! rejects unknown fields). Must not do I/O or echo client values in errors.

use serde_json::{Map, Value, json};

use super::thinking::plan;
use super::tools::{tool_choice, tools};
use super::{AnthropicChatSettings, KIND, messages};
use crate::api::chat::{ChatExt, top_k_of};
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

/// Translates an OpenAI chat request into an Anthropic `POST /v1/messages` body.
pub fn chat_request(
    body: &Map<String, Value>,
    model: &str,
    settings: &AnthropicChatSettings,
) -> Result<Value, TranslateError> {
    chat_request_ext(body, &ChatExt::default(), model, settings)
}

/// [`chat_request`] for a request with a translation's extension.
pub fn chat_request_ext(
    body: &Map<String, Value>,
    ext: &ChatExt,
    model: &str,
    settings: &AnthropicChatSettings,
) -> Result<Value, TranslateError> {
    refuse_unsupported(body)?;
    let Some(Value::Array(msgs)) = body.get("messages") else {
        return Err(invalid("'messages' must be an array"));
    };
    let conversation = messages::convert(msgs)?;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_string()));
    let max_tokens = max_tokens(body, settings)?;
    out.insert("max_tokens".into(), max_tokens.into());
    let thinking = plan(body, ext, model, max_tokens);
    // A chat client's own settings are refused when they cannot go (a
    // translated request's are named by its endpoint instead).
    let own_effort = field(body, "reasoning_effort").is_some_and(|e| e != "none");
    if ext.reasoning.is_none() && own_effort && thinking.is_none() {
        return Err(unsupported(
            "reasoning_effort with this model, a temperature other than 1 or a forced tool choice",
        ));
    }
    if ext.top_k.is_none() && field(body, "top_k").is_some() && thinking.is_some() {
        return Err(unsupported("top_k with reasoning_effort"));
    }
    out.insert("messages".into(), Value::Array(conversation.messages));
    if let Some(system) = conversation.system {
        out.insert("system".into(), system);
    }
    if let Some(stop) = stop_sequences(body)? {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(t) = field(body, "temperature") {
        let t = t
            .as_f64()
            .ok_or_else(|| invalid("'temperature' must be a number"))?;
        if !(0.0..=2.0).contains(&t) {
            return Err(invalid("'temperature' must be between 0 and 2"));
        }
        if t > 1.0 {
            return Err(unsupported("temperature above 1"));
        }
        out.insert("temperature".into(), t.into());
    }
    if let Some(p) = field(body, "top_p") {
        let p = p
            .as_f64()
            .ok_or_else(|| invalid("'top_p' must be a number"))?;
        out.insert("top_p".into(), p.into());
    }
    if field(body, "top_k").is_some_and(|k| k.as_u64().is_none()) {
        return Err(invalid("'top_k' must be a non-negative integer"));
    }
    if let Some(k) = top_k_of(body, ext).filter(|_| thinking.is_none()) {
        out.insert("top_k".into(), k.into());
    }
    match field(body, "stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), Value::Bool(true));
        }
        Some(_) => return Err(invalid("'stream' must be a boolean")),
    }
    let user = field(body, "user").or_else(|| field(body, "safety_identifier"));
    if let Some(user) = user {
        let user = user
            .as_str()
            .ok_or_else(|| invalid("'user' must be a string"))?;
        if !user.is_empty() {
            out.insert("metadata".into(), json!({"user_id": user}));
        }
    }
    let tools = tools(body, settings)?;
    if let Some(choice) = tool_choice(body, ext.serial_tool_calls, tools.as_deref())? {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(tools) = tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut output_config = Map::new();
    if let Some(format) = response_format(body, settings)? {
        output_config.insert("format".into(), format);
    }
    if let Some(t) = thinking {
        out.insert("thinking".into(), t.thinking);
        if let Some(effort) = t.effort {
            output_config.insert("effort".into(), effort.into());
        }
    }
    if !output_config.is_empty() {
        out.insert("output_config".into(), Value::Object(output_config));
    }
    Ok(Value::Object(out))
}

fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(n) = field(body, "n") {
        match n.as_u64() {
            Some(1) => {}
            Some(0) | None => return Err(invalid("'n' must be a positive integer")),
            Some(_) => return Err(unsupported("n > 1")),
        }
    }
    if field(body, "logprobs").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(unsupported("logprobs"));
    }
    if field(body, "logit_bias").is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty())) {
        return Err(unsupported("logit_bias"));
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if field(body, key).is_some_and(|v| v.as_f64() != Some(0.0)) {
            return Err(unsupported(key));
        }
    }
    if let Some(m) = field(body, "modalities") {
        let text_only = m
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x.as_str() == Some("text")));
        if !text_only {
            return Err(unsupported("modalities other than text"));
        }
    }
    for key in [
        "top_logprobs",
        "audio",
        "prediction",
        "web_search_options",
        "verbosity",
        "functions",
        "function_call",
    ] {
        if field(body, key).is_some() {
            return Err(unsupported(key));
        }
    }
    Ok(())
}

fn max_tokens(
    body: &Map<String, Value>,
    settings: &AnthropicChatSettings,
) -> Result<u64, TranslateError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(body, key) {
            return match v.as_u64() {
                Some(n) if n > 0 => Ok(n),
                _ => Err(TranslateError::InvalidRequest(format!(
                    "'{key}' must be a positive integer"
                ))),
            };
        }
    }
    Ok(u64::from(settings.default_max_tokens.max(1)))
}

fn stop_sequences(body: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let stops = match field(body, "stop") {
        None => return Ok(None),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) => {
            if !items.iter().all(Value::is_string) {
                return Err(invalid("'stop' must be a string or an array of strings"));
            }
            items.clone()
        }
        Some(_) => return Err(invalid("'stop' must be a string or an array of strings")),
    };
    Ok((!stops.is_empty()).then_some(Value::Array(stops)))
}

fn response_format(
    body: &Map<String, Value>,
    settings: &AnthropicChatSettings,
) -> Result<Option<Value>, TranslateError> {
    let Some(rf) = field(body, "response_format") else {
        return Ok(None);
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Err(unsupported("response_format json_object")),
        Some("json_schema") if settings.structured_outputs => {
            let schema = rf
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .filter(|s| s.is_object())
                .ok_or_else(|| invalid("response_format json_schema needs a 'schema' object"))?;
            Ok(Some(json!({"type": "json_schema", "schema": schema})))
        }
        Some("json_schema") => Err(unsupported("response_format json_schema")),
        _ => Err(invalid(
            "'response_format' must have type text, json_object or json_schema",
        )),
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
