//! A strict OpenAI-compatible upstream (`POST /v1/chat/completions` and
//! `POST /v1/responses`) on 127.0.0.1:0, built on [`FakeUpstream`].
//!
//! It refuses, as the OpenAI API does (400 `invalid_request_error` naming
//! the parameter), what a translation must never send: a parameter the
//! endpoint does not have (`Unrecognized request argument supplied`), a
//! `reasoning_effort` outside the documented levels, message roles other
//! than system / developer / user / assistant / tool, non-function chat
//! tools, a `tool_choice` without tools, a `json_schema` response format
//! without a valid name or schema, and tool messages answering no call.
//!
//! Chat answers: after a tool result, `Tool said: <result>`; when tools are
//! given, `Let me check.` and a call of the first tool with
//! `{"location": "Paris"}` (or its first property); under a `json_schema`
//! response format, a JSON object of the schema's shape; otherwise
//! `Fake OpenAI heard: <last user text>`. With `reasoning_effort`, the
//! answer carries `reasoning_content` first (as OpenAI-compatible reasoning
//! servers send it) and `completion_tokens_details.reasoning_tokens`. JSON,
//! or SSE chunks ending in `[DONE]` (usage when asked). `/v1/responses` is
//! checked the same way and answered by [`super::responses`].

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{FakeUpstream, Reply, Seen};

const CHAT_PARAMS: &[&str] = &[
    "model",
    "messages",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

const RESPONSES_PARAMS: &[&str] = &[
    "background",
    "client_metadata",
    "conversation",
    "include",
    "input",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "model",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
];

const EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

pub async fn start() -> FakeUpstream {
    FakeUpstream::start(|s: Seen, _| async move { handle(&s) }).await
}

fn rejected(param: &str, message: impl Into<String>) -> Reply {
    Reply::Json(
        400,
        json!({"error": {"message": message.into(), "type": "invalid_request_error",
                         "param": param, "code": null}}),
    )
}

fn handle(s: &Seen) -> Reply {
    let Some(body) = s.body.as_object() else {
        return rejected("", "We could not parse the JSON body of your request.");
    };
    match s.path.as_str() {
        "/v1/chat/completions" => match check_chat(body) {
            Err((param, m)) => rejected(param, m),
            Ok(()) => chat_answer(body),
        },
        "/v1/responses" => match check_responses(body) {
            Err((param, m)) => rejected(param, m),
            Ok(()) => {
                let resp = super::responses::answer(&s.body);
                if s.body["stream"] == true {
                    Reply::Sse(super::responses::events(&resp), Duration::ZERO)
                } else {
                    Reply::Json(200, resp)
                }
            }
        },
        other => Reply::Json(
            404,
            json!({"error": {"message": format!("Invalid URL (POST {other})"),
                             "type": "invalid_request_error"}}),
        ),
    }
}

type Check = Result<(), (&'static str, String)>;

fn unknown(body: &Map<String, Value>, known: &[&str]) -> Check {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(("", format!("Unrecognized request argument supplied: {k}"))),
        None => Ok(()),
    }
}

fn check_chat(body: &Map<String, Value>) -> Check {
    unknown(body, CHAT_PARAMS)?;
    if let Some(e) = body.get("reasoning_effort")
        && !e.as_str().is_some_and(|e| EFFORTS.contains(&e))
    {
        return Err(("reasoning_effort", format!("Invalid value: {e}.")));
    }
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or((
            "messages",
            "'messages' must be a non-empty array".to_string(),
        ))?;
    let mut calls: Vec<&str> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        match m["role"].as_str() {
            Some("system" | "developer" | "user") => {}
            Some("assistant") => calls.extend(
                m["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["id"].as_str()),
            ),
            Some("tool") => {
                if !m["tool_call_id"]
                    .as_str()
                    .is_some_and(|id| calls.contains(&id))
                {
                    return Err((
                        "messages",
                        format!("messages.[{i}]: a tool message must answer a preceding tool call"),
                    ));
                }
            }
            _ => return Err(("messages", format!("messages.[{i}].role: invalid role"))),
        }
    }
    let tools = body.get("tools").and_then(Value::as_array);
    for t in tools.into_iter().flatten() {
        if t["type"] != "function" || !t["function"]["name"].is_string() {
            return Err(("tools", "tools: only function tools with a name".into()));
        }
    }
    if let Some(c) = body.get("tool_choice")
        && c != "none"
        && c != "auto"
        && tools.is_none_or(|t| t.is_empty())
    {
        return Err((
            "tool_choice",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
                .into(),
        ));
    }
    if let Some(rf) = body.get("response_format")
        && rf["type"] == "json_schema"
    {
        let name = rf["json_schema"]["name"].as_str().unwrap_or("");
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_name || !rf["json_schema"]["schema"].is_object() {
            return Err((
                "response_format",
                "response_format.json_schema needs a name and a schema".into(),
            ));
        }
    }
    Ok(())
}

fn check_responses(body: &Map<String, Value>) -> Check {
    unknown(body, RESPONSES_PARAMS)?;
    if let Some(e) = body.get("reasoning").and_then(|r| r.get("effort"))
        && !e.as_str().is_some_and(|e| EFFORTS.contains(&e))
    {
        return Err(("reasoning.effort", format!("Invalid value: {e}.")));
    }
    Ok(())
}

/// A value of the JSON schema's shape (every property, by type).
pub fn example_of(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("object") => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), example_of(v)))
                .collect(),
        ),
        Some("array") => json!([example_of(&schema["items"])]),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => json!("example"),
    }
}

fn text_of(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn chat_answer(body: &Map<String, Value>) -> Reply {
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    // The last turn that is not a system message.
    let last = msgs
        .iter()
        .rev()
        .find(|m| m["role"] != "system" && m["role"] != "developer")
        .cloned()
        .unwrap_or_default();
    let user = msgs
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text_of)
        .unwrap_or_default();
    let tool = body
        .get("tools")
        .and_then(|t| t[0]["function"].as_object())
        .cloned();
    let (text, call) = if last["role"] == "tool" {
        (format!("Tool said: {}", text_of(&last)), None)
    } else if let Some(f) = tool.filter(|_| body.get("tool_choice") != Some(&json!("none"))) {
        let key = f["parameters"]["properties"]
            .as_object()
            .and_then(|p| p.keys().next().cloned())
            .unwrap_or_else(|| "location".into());
        let args = json!({key: "Paris"}).to_string();
        ("Let me check.".to_string(), Some((f["name"].clone(), args)))
    } else if body["response_format"]["type"] == "json_schema" {
        (
            example_of(&body["response_format"]["json_schema"]["schema"]).to_string(),
            None,
        )
    } else {
        (format!("Fake OpenAI heard: {user}"), None)
    };
    let reasoning = body
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .filter(|e| *e != "none")
        .map(|e| format!("Fake OpenAI reasons ({e}) about: {user}"));
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let words = |t: &str| t.split_whitespace().count() as u64;
    let reasoning_tokens = reasoning.as_deref().map_or(0, words);
    let usage = json!({"prompt_tokens": 12, "completion_tokens": words(&text) + reasoning_tokens,
                       "total_tokens": 12 + words(&text) + reasoning_tokens,
                       "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}});
    if body.get("stream") != Some(&json!(true)) {
        let mut message = json!({"role": "assistant", "content": text});
        if let Some(r) = &reasoning {
            message["reasoning_content"] = json!(r);
        }
        if let Some((name, args)) = &call {
            message["tool_calls"] = json!([{"id": "call_strict_1", "type": "function",
                "function": {"name": name, "arguments": args}}]);
        }
        return Reply::Json(
            200,
            json!({"id": "chatcmpl-strict", "object": "chat.completion", "created": 1,
                   "model": body["model"],
                   "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                   "usage": usage}),
        );
    }
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-strict", "object": "chat.completion.chunk", "created": 1,
                   "model": body["model"],
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(r) = &reasoning {
        for piece in r.split_inclusive(' ') {
            events.push(chunk(json!({"reasoning_content": piece}), Value::Null));
        }
    }
    for piece in text.split_inclusive(' ') {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    if let Some((name, args)) = &call {
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_strict_1", "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        let mid = args.len() / 2;
        for piece in [&args[..mid], &args[mid..]] {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    events.push(chunk(json!({}), json!(finish)));
    if body["stream_options"]["include_usage"] == true {
        events.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-strict", "object": "chat.completion.chunk", "created": 1,
                   "model": body["model"], "choices": [], "usage": usage})
        ));
    }
    events.push("data: [DONE]\n\n".into());
    Reply::Sse(events, Duration::ZERO)
}
