//! Converse response body -> OpenAI `chat.completion`, plus the stop-reason
//! and usage mappings the stream translator shares.
//!
//! Place in the pipeline: the adapter calls [`chat_response`] on a 2xx
//! Converse body. `output.message.content` text blocks join into
//! `message.content`; `toolUse` blocks become `tool_calls` (arguments
//! serialised to a JSON string); `reasoningContent` text becomes
//! `message.reasoning_content` (the field OpenAI-compatible servers use);
//! other block kinds are left out. Converse bodies carry no id, so one is made up.
//!
//! Stop reasons: `end_turn` / `stop_sequence` -> `stop`, `max_tokens` /
//! `model_context_window_exceeded` -> `length`, `tool_use` -> `tool_calls`,
//! `guardrail_intervened` / `content_filtered` -> `content_filter`;
//! `malformed_model_output` / `malformed_tool_use` are upstream failures
//! (BadResponse); unknown future values -> `stop`.
//!
//! Must not: echo the upstream body in errors.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::providers::translate::TranslateError;

pub(crate) fn bad(message: impl Into<String>) -> TranslateError {
    TranslateError::BadResponse(message.into())
}

pub(crate) fn new_id() -> String {
    format!(
        "chatcmpl-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Converse `stopReason` -> OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> Result<&'static str, TranslateError> {
    Ok(match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        "malformed_model_output" | "malformed_tool_use" => {
            return Err(bad(format!(
                "the model's output was unusable ({stop_reason})"
            )));
        }
        _ => "stop",
    })
}

/// Converse `usage` -> OpenAI `usage`. Cache reads and writes are input
/// tokens Bedrock counts apart from `inputTokens`; OpenAI counts them in
/// `prompt_tokens` and reports reads as `prompt_tokens_details.cached_tokens`
/// (writes as `cache_write_tokens` there).
pub fn usage(usage: Option<&Value>) -> Value {
    let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64);
    let cache_read = n("cacheReadInputTokens");
    let cache_write = n("cacheWriteInputTokens");
    let prompt = n("inputTokens").unwrap_or(0) + cache_read.unwrap_or(0) + cache_write.unwrap_or(0);
    let completion = n("outputTokens").unwrap_or(0);
    let mut out = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    if cache_read.is_some() || cache_write.is_some() {
        out["prompt_tokens_details"] = json!({ "cached_tokens": cache_read.unwrap_or(0),
                                               "cache_write_tokens": cache_write.unwrap_or(0) });
    }
    out
}

/// One OpenAI tool call from a Converse `toolUse` object.
fn tool_call(tool_use: &Value) -> Result<Value, TranslateError> {
    let id = tool_use.get("toolUseId").and_then(Value::as_str);
    let name = tool_use.get("name").and_then(Value::as_str);
    let (Some(id), Some(name)) = (id, name) else {
        return Err(bad("toolUse block without toolUseId or name"));
    };
    let arguments = tool_use
        .get("input")
        .map(Value::to_string)
        .unwrap_or_else(|| "{}".to_string());
    Ok(
        json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } }),
    )
}

/// Translates a Converse response body for client-facing model `model`.
pub fn chat_response(upstream: &[u8], model: &str) -> Result<Value, TranslateError> {
    let body: Value =
        serde_json::from_slice(upstream).map_err(|_| bad("Converse body is not JSON"))?;
    let blocks = body
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("Converse body has no output.message.content"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tool_use) = block.get("toolUse") {
            tool_calls.push(tool_call(tool_use)?);
        } else if let Some(t) = block
            .pointer("/reasoningContent/reasoningText/text")
            .and_then(Value::as_str)
        {
            reasoning.push_str(t);
        }
    }
    let stop = body
        .get("stopReason")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("Converse body has no stopReason"))?;
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let has_text = !text.is_empty();
    message.insert(
        "content".into(),
        if has_text {
            Value::String(text)
        } else {
            Value::Null
        },
    );
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::String(reasoning));
    }
    Ok(json!({
        "id": new_id(),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason(stop)? }],
        "usage": usage(body.get("usage")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_answer() {
        // The shape of the Converse API reference's response example.
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello! "},{"text":"How can I help?"}]}},
            "stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":9,"totalTokens":21},
            "metrics":{"latencyMs":320}}"#;
        let out = chat_response(body, "my-claude").unwrap();
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["model"], "my-claude");
        assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(out["created"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(
            out["choices"][0],
            json!({"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"},
                   "finish_reason": "stop"})
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21})
        );
    }

    #[test]
    fn tool_use_answer() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[
            {"text":"Let me check."},
            {"toolUse":{"toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"top_song","input":{"sign":"WZPZ"}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":375,"outputTokens":68,"totalTokens":443,
            "cacheReadInputTokens":100,"cacheWriteInputTokens":20}}"#;
        let out = chat_response(body, "m").unwrap();
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check.");
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                    "function": {"name": "top_song", "arguments": "{\"sign\":\"WZPZ\"}"}}])
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 495, "completion_tokens": 68, "total_tokens": 563,
                   "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20}})
        );
    }

    #[test]
    fn stop_reason_mapping() {
        for (bedrock, openai) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(finish_reason(bedrock).unwrap(), openai, "{bedrock}");
        }
        assert!(matches!(
            finish_reason("malformed_tool_use"),
            Err(TranslateError::BadResponse(_))
        ));
        let filtered = br#"{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"content_filtered"}"#;
        let out = chat_response(filtered, "m").unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn malformed_bodies_are_bad_responses() {
        for body in [
            &b"not json"[..],
            br#"{"stopReason":"end_turn"}"#,
            br#"{"output":{"message":{"content":[{"text":"x"}]}}}"#,
            br#"{"output":{"message":{"content":[{"toolUse":{"name":"f"}}]}},"stopReason":"tool_use"}"#,
        ] {
            assert!(matches!(chat_response(body, "m"), Err(TranslateError::BadResponse(_))));
        }
    }
}
