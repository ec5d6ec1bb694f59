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
mod tests {
    use super::*;

    fn translate(body: Value) -> Result<Value, TranslateError> {
        let settings = BedrockChatSettings::default();
        chat_request(
            body.as_object().unwrap(),
            "anthropic.claude-3-haiku-20240307-v1:0",
            &settings,
        )
    }

    fn weather_tool() -> Value {
        json!({"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
               "strict": true}})
    }

    #[test]
    fn plain_chat_with_system_and_inference_config() {
        let out = translate(json!({
            "model": "claude", "stream": true, "stream_options": {"include_usage": true}, "user": "u1", "seed": 7,
            "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}],
            "max_tokens": 100, "max_completion_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": "END", "n": 1,
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
                "system": [{"text": "You are terse."}],
                "inferenceConfig": {"maxTokens": 50, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
            })
        );
        let settings = BedrockChatSettings {
            default_max_tokens: Some(4096),
        };
        let body = json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]});
        let out = chat_request(body.as_object().unwrap(), "m", &settings).unwrap();
        assert_eq!(
            out["inferenceConfig"],
            json!({"maxTokens": 4096, "stopSequences": ["a", "b"]})
        );
    }

    #[test]
    fn tools_and_tool_choice() {
        let base = json!({"messages": [{"role": "user", "content": "weather?"}], "tools": [weather_tool()]});
        let spec = json!({"toolSpec": {"name": "get_weather", "description": "Weather by city",
            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}});
        let out = translate(base.clone()).unwrap();
        assert_eq!(out["toolConfig"], json!({"tools": [spec]}));
        for (choice, expected) in [
            (json!("auto"), json!({"auto": {}})),
            (json!("required"), json!({"any": {}})),
            (
                json!({"type": "function", "function": {"name": "get_weather"}}),
                json!({"tool": {"name": "get_weather"}}),
            ),
        ] {
            let mut body = base.clone();
            body["tool_choice"] = choice;
            assert_eq!(
                translate(body).unwrap()["toolConfig"]["toolChoice"],
                expected
            );
        }
        let mut none = base.clone();
        none["tool_choice"] = json!("none");
        assert!(translate(none).unwrap().get("toolConfig").is_none());

        let mut unknown = base.clone();
        unknown["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
        assert!(matches!(
            translate(unknown),
            Err(TranslateError::InvalidRequest(_))
        ));
        let required_alone =
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"});
        assert!(matches!(
            translate(required_alone),
            Err(TranslateError::InvalidRequest(_))
        ));
        let mut other_kind = base.clone();
        other_kind["tools"] = json!([{"type": "web_search"}]);
        assert!(matches!(
            translate(other_kind),
            Err(TranslateError::Unsupported { .. })
        ));
    }

    #[test]
    fn top_k_goes_where_the_model_takes_it() {
        let body = json!({"messages": [{"role": "user", "content": "x"}], "top_k": 5});
        let out = translate(body.clone()).unwrap();
        assert_eq!(out["additionalModelRequestFields"], json!({"top_k": 5}));
        let llama = chat_request(
            body.as_object().unwrap(),
            "meta.llama3-70b-instruct-v1:0",
            &BedrockChatSettings::default(),
        );
        assert!(matches!(llama, Err(TranslateError::Unsupported { .. })));
    }

    #[test]
    fn tool_choice_none_with_tool_history_is_unsupported() {
        let body = json!({
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
            "tools": [weather_tool()], "tool_choice": "none"});
        let err = translate(body).unwrap_err();
        assert!(err.to_string().contains("tool_choice \"none\""), "{err}");
    }

    #[test]
    fn refuses_what_converse_cannot_express() {
        for (field, value, named) in [
            ("n", json!(2), "n > 1"),
            (
                "response_format",
                json!({"type": "json_object"}),
                "response_format \"json_object\"",
            ),
            ("presence_penalty", json!(0.5), "presence_penalty"),
            ("logprobs", json!(true), "logprobs"),
            ("logit_bias", json!({"50256": -100}), "logit_bias"),
            (
                "parallel_tool_calls",
                json!(false),
                "parallel_tool_calls: false",
            ),
            ("reasoning_effort", json!("high"), "reasoning_effort"),
        ] {
            let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
            body[field] = value;
            match translate(body) {
                Err(TranslateError::Unsupported {
                    kind: "bedrock",
                    feature,
                }) => assert_eq!(feature, named),
                other => panic!("{field}: {other:?}"),
            }
        }
        let fine = json!({"messages": [{"role": "user", "content": "x"}], "frequency_penalty": 0,
            "response_format": {"type": "text"}, "parallel_tool_calls": true, "logprobs": false, "metadata": {"a": "b"}});
        assert!(translate(fine).is_ok());
    }

    #[test]
    fn rejects_invalid_values() {
        for body in [
            json!({"messages": []}),
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            json!({"messages": [{"role": "user", "content": "x"}], "stop": [1]}),
        ] {
            assert!(matches!(
                translate(body),
                Err(TranslateError::InvalidRequest(_))
            ));
        }
        let body = json!({"messages": [{"role": "user", "content": "x"}]});
        let settings = BedrockChatSettings::default();
        assert!(chat_request(body.as_object().unwrap(), "", &settings).is_err());
    }
}
