//! OpenAI chat request -> Gemini `GenerateContentRequest`.
//!
//! Place in the pipeline: the first step of a `gemini` attempt; the body
//! goes to [`super::wire::chat_path`] (the model is in the path, `stream`
//! picks the method, `stream_options.include_usage` is read by the caller for
//! [`super::GeminiStream`]).
//!
//! Translated: `messages` (see [`super::messages`]); `max_completion_tokens`
//! or `max_tokens` -> `maxOutputTokens`; `temperature`, `top_p` -> `topP`,
//! `stop` -> `stopSequences`, `n` -> `candidateCount`, `presence_penalty`,
//! `frequency_penalty`, `seed`, `top_k` (or a translated request's) ->
//! `topK`, `reasoning_effort` (or a translated request's reasoning) ->
//! `thinkingConfig` (see [`super::thinking`]); `response_format` json_object ->
//! `responseMimeType: application/json`, json_schema -> that plus
//! `responseSchema` (see [`super::schema`]) or `responseJsonSchema`;
//! `tools` (functions) -> `tools[0].functionDeclarations`; `tool_choice`
//! auto/none/required/named -> `toolConfig.functionCallingConfig` mode
//! AUTO/NONE/ANY (+ `allowedFunctionNames`).
//!
//! Dropped as harmless: `user`, `safety_identifier`, `metadata`, `store`,
//! `service_tier`, `prompt_cache_key`, `prompt_cache_retention`,
//! `prediction`, `parallel_tool_calls: true`, `logprobs: false`,
//! `modalities: ["text"]`, tool `strict`, and any field set to null.
//! Unsupported: `parallel_tool_calls: false`, `logprobs: true`,
//! `top_logprobs`, `logit_bias`, `verbosity`, `audio`,
//! other modalities, `web_search_options`, `functions` / `function_call`,
//! non-function tools, `allowed_tools` in auto mode, and any unknown field.
//! Must not do I/O or look at the model beyond the signature rule below.

use serde_json::{Map, Value, json};

use super::thinking::thinking_config;
use super::{invalid, messages, schema, unsupported};
use crate::api::chat::{ChatExt, top_k_of};
use crate::providers::translate::TranslateError;

/// Per-provider knobs for chat.
#[derive(Debug, Clone, PartialEq)]
pub struct GeminiChatSettings {
    /// `maxOutputTokens` when the client sets no limit (Gemini's own default
    /// otherwise).
    pub default_max_tokens: Option<u64>,
    /// Send JSON Schema as is in `parametersJsonSchema` and
    /// `responseJsonSchema` instead of converting it to `Schema` (newer
    /// models only).
    pub native_json_schema: bool,
    /// Give replayed tool calls the placeholder `thoughtSignature` Gemini 3
    /// requires (never for `gemini-1.*`, `gemini-2.*` and `gemma-*` models).
    pub placeholder_thought_signature: bool,
}

impl Default for GeminiChatSettings {
    fn default() -> Self {
        GeminiChatSettings {
            default_max_tokens: None,
            native_json_schema: false,
            placeholder_thought_signature: true,
        }
    }
}

/// Fields the loop below skips: read elsewhere (`model` is in the path,
/// `messages` after the loop, `stream*` by the caller) or harmless to drop.
const SKIPPED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prediction",
];

/// Translates an OpenAI chat body for upstream model `model`.
pub fn chat_request(
    body: &Map<String, Value>,
    model: &str,
    settings: &GeminiChatSettings,
) -> Result<Value, TranslateError> {
    chat_request_ext(body, &ChatExt::default(), model, settings)
}

/// [`chat_request`] for a request with a translation's extension.
pub fn chat_request_ext(
    body: &Map<String, Value>,
    ext: &ChatExt,
    model: &str,
    settings: &GeminiChatSettings,
) -> Result<Value, TranslateError> {
    let mut config = Map::new();
    let mut tools = None;
    let mut tool_choice = None;
    for (key, value) in body {
        if value.is_null() || SKIPPED.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "max_tokens"
                if body
                    .get("max_completion_tokens")
                    .is_some_and(|v| !v.is_null()) => {}
            "max_tokens" | "max_completion_tokens" => {
                config.insert("maxOutputTokens".into(), uint(value, key)?.into());
            }
            "temperature" => set_number(&mut config, "temperature", value, key)?,
            "top_p" => set_number(&mut config, "topP", value, key)?,
            "top_k" => {
                uint(value, key)?;
            }
            "reasoning_effort" if value == "none" => {}
            "reasoning_effort" if thinking_config(body, ext, model).is_some() => {}
            "reasoning_effort" => {
                return Err(unsupported(format!("`reasoning_effort` for `{model}`")));
            }
            "presence_penalty" => set_number(&mut config, "presencePenalty", value, key)?,
            "frequency_penalty" => set_number(&mut config, "frequencyPenalty", value, key)?,
            "seed" => {
                let seed = value
                    .as_i64()
                    .ok_or_else(|| invalid("`seed` must be an integer"))?;
                config.insert("seed".into(), seed.into());
            }
            "n" => match uint(value, key)? {
                0 => return Err(invalid("`n` must be at least 1")),
                1 => {}
                n => {
                    config.insert("candidateCount".into(), n.into());
                }
            },
            "stop" => {
                let stops = match value {
                    Value::String(s) => vec![Value::String(s.clone())],
                    Value::Array(xs) if xs.iter().all(Value::is_string) => xs.clone(),
                    _ => return Err(invalid("`stop` must be a string or an array of strings")),
                };
                config.insert("stopSequences".into(), Value::Array(stops));
            }
            "response_format" => response_format(value, settings, &mut config)?,
            "tools" => tools = Some(value),
            "tool_choice" => tool_choice = Some(value),
            "parallel_tool_calls" if value == &Value::Bool(true) => {}
            "parallel_tool_calls" => return Err(unsupported("`parallel_tool_calls: false`")),
            "logprobs" if value == &Value::Bool(false) => {}
            "logprobs" => return Err(unsupported("`logprobs: true`")),
            "modalities" if value == &json!(["text"]) => {}
            "modalities" => return Err(unsupported("`modalities` other than [\"text\"]")),
            other => return Err(unsupported(format!("`{other}`"))),
        }
    }
    if !config.contains_key("maxOutputTokens")
        && let Some(max) = settings.default_max_tokens
    {
        config.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(k) = top_k_of(body, ext) {
        config.insert("topK".into(), k.into());
    }
    if let Some(thinking) = thinking_config(body, ext, model) {
        config.insert("thinkingConfig".into(), thinking);
    }

    let messages = match body.get("messages") {
        Some(Value::Array(m)) => m,
        _ => return Err(invalid("`messages` must be an array")),
    };
    let sign = settings.placeholder_thought_signature && !old_generation(model);
    let conversation = messages::convert(messages, sign)?;
    if conversation.contents.is_empty() {
        return Err(invalid(
            "the messages hold no user or assistant content to send",
        ));
    }

    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(conversation.contents));
    if !conversation.system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({ "parts": conversation.system }),
        );
    }
    let declared = match tools {
        Some(tools) => function_declarations(tools, settings)?,
        None => Vec::new(),
    };
    if let Some(choice) = tool_choice
        && let Some(calling) = function_calling_config(choice, !declared.is_empty())?
    {
        out.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": calling }),
        );
    }
    if !declared.is_empty() {
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declared }]),
        );
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

/// Models that predate thought signatures (and may not expect one).
fn old_generation(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    name.starts_with("gemini-1") || name.starts_with("gemini-2") || name.starts_with("gemma")
}

fn uint(value: &Value, key: &str) -> Result<u64, TranslateError> {
    value
        .as_u64()
        .ok_or_else(|| invalid(format!("`{key}` must be a non-negative integer")))
}

fn set_number(
    config: &mut Map<String, Value>,
    name: &str,
    value: &Value,
    key: &str,
) -> Result<(), TranslateError> {
    if !value.is_number() {
        return Err(invalid(format!("`{key}` must be a number")));
    }
    config.insert(name.into(), value.clone());
    Ok(())
}

fn response_format(
    value: &Value,
    settings: &GeminiChatSettings,
    config: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            let schema = value
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .ok_or_else(|| invalid("`response_format.json_schema.schema` is required"))?;
            config.insert("responseMimeType".into(), "application/json".into());
            if settings.native_json_schema {
                config.insert("responseJsonSchema".into(), schema.clone());
            } else {
                config.insert("responseSchema".into(), schema::to_gemini(schema)?);
            }
        }
        Some(other) => return Err(unsupported(format!("`response_format` type `{other}`"))),
        None => return Err(invalid("`response_format` needs a `type`")),
    }
    Ok(())
}

fn function_declarations(
    tools: &Value,
    settings: &GeminiChatSettings,
) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("`tools` must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for tool in tools {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => return Err(unsupported(format!("`{other}` tools"))),
            None => return Err(invalid("tools need a `type`")),
        }
        let function = tool
            .get("function")
            .ok_or_else(|| invalid("function tools need `function`"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("function tools need `function.name`"))?;
        let mut decl = Map::new();
        decl.insert("name".into(), name.into());
        if let Some(d) = function.get("description").filter(|d| !d.is_null()) {
            decl.insert("description".into(), d.clone());
        }
        // Gemini refuses an OBJECT with no properties: a function without
        // parameters simply has none.
        let parameters = function.get("parameters").filter(|p| {
            !p.is_null()
                && p.get("properties")
                    .and_then(Value::as_object)
                    .is_none_or(|props| !props.is_empty())
        });
        if let Some(parameters) = parameters {
            if settings.native_json_schema {
                decl.insert("parametersJsonSchema".into(), parameters.clone());
            } else {
                decl.insert("parameters".into(), schema::to_gemini(parameters)?);
            }
        }
        out.push(Value::Object(decl));
    }
    Ok(out)
}

/// `functionCallingConfig`, or none when the choice is the default.
fn function_calling_config(
    choice: &Value,
    have_tools: bool,
) -> Result<Option<Value>, TranslateError> {
    let (mode, names): (&str, Vec<&str>) = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => ("AUTO", vec![]),
            "none" => ("NONE", vec![]),
            "required" => ("ANY", vec![]),
            other => return Err(invalid(format!("unknown `tool_choice` `{other}`"))),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("`tool_choice.function.name` is required"))?;
                ("ANY", vec![name])
            }
            Some("allowed_tools") => {
                let allowed = o.get("allowed_tools").unwrap_or(&Value::Null);
                if allowed.get("mode").and_then(Value::as_str) != Some("required") {
                    return Err(unsupported("`tool_choice.allowed_tools` in `auto` mode"));
                }
                let names = allowed
                    .get("tools")
                    .and_then(Value::as_array)
                    .map(|ts| {
                        ts.iter()
                            .filter_map(|t| t.get("function")?.get("name")?.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                ("ANY", names)
            }
            Some(other) => return Err(unsupported(format!("`tool_choice` type `{other}`"))),
            None => return Err(invalid("`tool_choice` needs a `type`")),
        },
        _ => return Err(invalid("`tool_choice` must be a string or an object")),
    };
    if !have_tools {
        return match mode {
            "ANY" => Err(invalid(
                "`tool_choice` requires a tool but `tools` is empty",
            )),
            _ => Ok(None),
        };
    }
    let mut config = json!({ "mode": mode });
    if !names.is_empty() {
        config["allowedFunctionNames"] = json!(names);
    }
    Ok(Some(config))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
