//! Gemini `GenerateContentResponse` -> OpenAI `chat.completion`, and the
//! pieces the stream translator shares (finish reasons, usage, ids).
//!
//! Place in the pipeline: the last step of a non-streaming `gemini` attempt.
//! Each candidate becomes a choice (`index` defaults to its position: proto3
//! JSON omits zero). Text parts are joined; `thought` parts (thought
//! summaries, sent when the request asked with `includeThoughts`) are joined
//! into `message.reasoning_content`;
//! `functionCall` parts become `tool_calls` with fresh `call_...` ids and the
//! args as a JSON string; other part kinds (images, code execution) are not
//! representable and are skipped. A prompt blocked by `promptFeedback`
//! (no candidates) becomes one empty choice with `content_filter` here; the
//! provider answers such a body as a content-policy refusal before it gets
//! here.
//!
//! Usage: `prompt_tokens` = promptTokenCount + toolUsePromptTokenCount,
//! `completion_tokens` = candidatesTokenCount + thoughtsTokenCount (OpenAI
//! counts reasoning as completion), `total_tokens` = totalTokenCount, plus
//! `prompt_tokens_details.cached_tokens` (cachedContentTokenCount) and
//! `completion_tokens_details.reasoning_tokens` when reported. Must not keep
//! or log the body.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::bad_response;
use crate::providers::translate::TranslateError;
use crate::providers::truncate;

/// OpenAI's `finish_reason` for a Gemini `finishReason`.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// OpenAI `usage` from Gemini `usageMetadata` (missing counts are 0).
pub fn usage(meta: Option<&Value>) -> Value {
    let count = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_u64);
    let prompt =
        count("promptTokenCount").unwrap_or(0) + count("toolUsePromptTokenCount").unwrap_or(0);
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount").unwrap_or(0) + thoughts.unwrap_or(0);
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": count("totalTokenCount").unwrap_or(prompt + completion),
    });
    if let Some(cached) = count("cachedContentTokenCount") {
        usage["prompt_tokens_details"] = json!({ "cached_tokens": cached });
    }
    if let Some(thoughts) = thoughts {
        usage["completion_tokens_details"] = json!({ "reasoning_tokens": thoughts });
    }
    usage
}

/// `chatcmpl-` + Gemini's `responseId` when it gave one, else random.
pub fn completion_id(upstream: &Value) -> String {
    match upstream.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-{}", random_token()),
    }
}

/// A fresh tool call id, unique across turns (Gemini gives none).
pub fn call_id() -> String {
    format!("call_{}", random_token())
}

fn random_token() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A body that is Gemini's error object, as a `BadResponse`.
pub fn upstream_error(v: &Value) -> Option<TranslateError> {
    let error = v.get("error")?;
    let status = error
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN");
    let code = error.get("code").and_then(Value::as_u64).unwrap_or(0);
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(bad_response(format!(
        "upstream error {status} ({code}): {}",
        truncate(message)
    )))
}

/// One useful part of a candidate.
#[derive(Debug)]
pub enum Piece<'a> {
    Text(&'a str),
    Thought(&'a str),
    Call { name: &'a str, args: String },
}

/// The text and function-call parts of a candidate, in order.
pub fn pieces(candidate: &Value) -> Result<Vec<Piece<'_>>, TranslateError> {
    let parts = candidate
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            if let Some(t) = part
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                out.push(Piece::Thought(t));
            }
            continue;
        }
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            if !text.is_empty() {
                out.push(Piece::Text(text));
            }
        } else if let Some(call) = part.get("functionCall") {
            let name = call
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_response("functionCall without a name"))?;
            let args = match call.get("args") {
                Some(Value::Object(args)) => serde_json::to_string(args).unwrap_or_default(),
                None | Some(Value::Null) => "{}".to_string(),
                Some(_) => return Err(bad_response("functionCall args are not an object")),
            };
            out.push(Piece::Call { name, args });
        }
    }
    Ok(out)
}

/// The `(index, finishReason)` of a candidate.
pub fn candidate_meta(candidate: &Value, position: usize) -> (u64, Option<&str>) {
    let index = candidate
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64);
    (index, candidate.get("finishReason").and_then(Value::as_str))
}

/// The prompt was refused before any candidate was generated.
pub fn prompt_blocked(v: &Value) -> bool {
    v.get("promptFeedback")
        .and_then(|f| f.get("blockReason"))
        .is_some()
}

/// Translates a whole `generateContent` body.
pub fn chat_response(upstream: &[u8], model: &str) -> Result<Value, TranslateError> {
    let v: Value =
        serde_json::from_slice(upstream).map_err(|e| bad_response(format!("invalid JSON: {e}")))?;
    if let Some(err) = upstream_error(&v) {
        return Err(err);
    }
    let candidates = v
        .get("candidates")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut choices = Vec::with_capacity(candidates.len().max(1));
    if candidates.is_empty() {
        if !prompt_blocked(&v) {
            return Err(bad_response(
                "response has neither candidates nor promptFeedback.blockReason",
            ));
        }
        choices.push(choice(0, Value::from(""), None, "content_filter"));
    }
    for (position, candidate) in candidates.iter().enumerate() {
        let (index, reason) = candidate_meta(candidate, position);
        let mut text = String::new();
        let mut thoughts = String::new();
        let mut calls = Vec::new();
        for piece in pieces(candidate)? {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Thought(t) => thoughts.push_str(t),
                Piece::Call { name, args } => calls.push(json!({
                    "id": call_id(), "type": "function",
                    "function": {"name": name, "arguments": args},
                })),
            }
        }
        let finish = finish_reason(reason.unwrap_or("STOP"), !calls.is_empty());
        let content = if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        };
        let calls = (!calls.is_empty()).then_some(Value::Array(calls));
        let mut c = choice(index, content, calls, finish);
        if !thoughts.is_empty() {
            c["message"]["reasoning_content"] = Value::String(thoughts);
        }
        choices.push(c);
    }
    Ok(json!({
        "id": completion_id(&v),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": choices,
        "usage": usage(v.get("usageMetadata")),
    }))
}

fn choice(index: u64, content: Value, tool_calls: Option<Value>, finish: &str) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), content);
    if let Some(calls) = tool_calls {
        message.insert("tool_calls".into(), calls);
    }
    message.insert("refusal".into(), Value::Null);
    json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish})
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
