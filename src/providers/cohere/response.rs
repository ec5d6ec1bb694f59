//! Cohere `/v2/chat` answer -> OpenAI `chat.completion`.
//!
//! Place in the pipeline: the `cohere` provider calls [`chat_response`] on a
//! whole `200` body. `message.content` text blocks are joined (`thinking`
//! blocks are not part of the answer and are dropped, as is `tool_plan`,
//! Cohere's reasoning before tool calls, and `citations`); `tool_calls` keep
//! their ids and JSON-string arguments; `finish_reason` is mapped by
//! [`finish_reason`] (`ERROR`/`TIMEOUT` are failed generations:
//! `BadResponse`); usage from `usage.tokens` (else `usage.billed_units`),
//! `cached_tokens` -> `prompt_tokens_details.cached_tokens`. Must not invent
//! content.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::bad_response;
use crate::providers::translate::TranslateError;

pub fn chat_response(upstream: &[u8], model: &str) -> Result<Value, TranslateError> {
    let v: Value =
        serde_json::from_slice(upstream).map_err(|e| bad_response(format!("invalid JSON: {e}")))?;
    let message = v
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad_response("missing `message`"))?;
    let reason = v
        .get("finish_reason")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_response("missing `finish_reason`"))?;
    let finish = finish_reason(reason)?;
    let text = message
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<String>()
        })
        .unwrap_or_default();
    let mut out_message = json!({"role": "assistant", "content": text});
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty());
    if let Some(calls) = calls {
        let calls = calls
            .iter()
            .map(|call| {
                let id = call.get("id").and_then(Value::as_str);
                let name = call.pointer("/function/name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(bad_response("a tool call without `id` or `function.name`"));
                };
                let arguments = call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}");
                Ok(json!({"id": id, "type": "function",
                          "function": {"name": name, "arguments": arguments}}))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if text.is_empty() {
            out_message["content"] = Value::Null;
        }
        out_message["tool_calls"] = Value::Array(calls);
    }
    let mut out = json!({
        "id": v.get("id").and_then(Value::as_str).unwrap_or("chatcmpl-cohere"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": out_message, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(usage) = v.get("usage") {
        out["usage"] = usage_of(usage);
    }
    Ok(out)
}

/// Cohere's finish reason -> OpenAI's; failed generations are errors.
pub fn finish_reason(reason: &str) -> Result<&'static str, TranslateError> {
    match reason {
        "COMPLETE" | "STOP_SEQUENCE" => Ok("stop"),
        "MAX_TOKENS" => Ok("length"),
        "TOOL_CALL" => Ok("tool_calls"),
        "ERROR" => Err(bad_response("Cohere ended the generation with ERROR")),
        "TIMEOUT" => Err(bad_response("Cohere ended the generation with TIMEOUT")),
        other => Err(bad_response(format!("unknown finish_reason {other:?}"))),
    }
}

/// Cohere usage -> OpenAI usage.
pub fn usage_of(usage: &Value) -> Value {
    let count = |key: &str| {
        usage
            .pointer(&format!("/tokens/{key}"))
            .or_else(|| usage.pointer(&format!("/billed_units/{key}")))
            .and_then(Value::as_f64)
            .map_or(0, |n| n.max(0.0) as u64)
    };
    let (prompt, completion) = (count("input_tokens"), count("output_tokens"));
    let mut out = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    if let Some(cached) = usage.get("cached_tokens").and_then(Value::as_f64) {
        out["prompt_tokens_details"] = json!({"cached_tokens": cached.max(0.0) as u64});
    }
    out
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_answer_from_the_reference() {
        let body = json!({
            "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
            "message": {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants an overview."},
                {"type": "text", "text": "Large Language Models (LLMs) are "},
                {"type": "text", "text": "neural networks."}]},
            "finish_reason": "COMPLETE",
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 418},
                      "tokens": {"input_tokens": 71, "output_tokens": 418}, "cached_tokens": 64}
        });
        let out = chat_response(body.to_string().as_bytes(), "command-a").unwrap();
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["id"], "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
        assert_eq!(out["model"], "command-a");
        assert!(out["created"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "Large Language Models (LLMs) are neural networks."})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 71, "completion_tokens": 418, "total_tokens": 489,
                   "prompt_tokens_details": {"cached_tokens": 64}})
        );
    }

    #[test]
    fn tool_calls_from_the_reference() {
        let body = json!({
            "id": "9e5f00aa-bf1e-481a-abe3-0eceac18c3ec",
            "message": {"role": "assistant",
                "tool_plan": "I will first find the sales summary for 29th September 2023.",
                "tool_calls": [
                    {"id": "query_daily_sales_report_hgxxmkby3wta", "type": "function",
                     "function": {"name": "query_daily_sales_report", "arguments": "{\"day\":\"2023-09-29\"}"}},
                    {"id": "query_product_catalog_ygxyw5ecmhzy", "type": "function",
                     "function": {"name": "query_product_catalog", "arguments": "{\"category\":\"Electronics\"}"}}]},
            "finish_reason": "TOOL_CALL",
            "usage": {"billed_units": {"input_tokens": 127, "output_tokens": 69}}
        });
        let out = chat_response(body.to_string().as_bytes(), "command-r").unwrap();
        let msg = &out["choices"][0]["message"];
        assert_eq!(msg["content"], Value::Null);
        assert_eq!(
            msg["tool_calls"][1]["id"],
            "query_product_catalog_ygxyw5ecmhzy"
        );
        assert_eq!(msg["tool_calls"][1]["type"], "function");
        assert_eq!(
            msg["tool_calls"][0]["function"]["arguments"],
            "{\"day\":\"2023-09-29\"}"
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["usage"]["total_tokens"], 196);
    }

    #[test]
    fn finish_reasons_and_broken_answers() {
        assert_eq!(finish_reason("STOP_SEQUENCE").unwrap(), "stop");
        assert_eq!(finish_reason("MAX_TOKENS").unwrap(), "length");
        for bad in ["ERROR", "TIMEOUT", "WHATEVER"] {
            assert!(matches!(
                finish_reason(bad),
                Err(TranslateError::BadResponse(_))
            ));
        }
        for body in [
            &b"{}"[..],
            b"{\"message\": {\"role\": \"assistant\"}}",
            b"{\"message\": {\"content\": []}, \"finish_reason\": \"ERROR\"}",
            b"{\"message\": {\"tool_calls\": [{\"id\": \"x\"}]}, \"finish_reason\": \"TOOL_CALL\"}",
            b"<html>",
        ] {
            assert!(
                matches!(
                    chat_response(body, "m"),
                    Err(TranslateError::BadResponse(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let no_usage = json!({"id": "x", "message": {"content": []}, "finish_reason": "COMPLETE"});
        let out = chat_response(no_usage.to_string().as_bytes(), "m").unwrap();
        assert!(out.get("usage").is_none());
        assert_eq!(out["choices"][0]["message"]["content"], "");
    }
}
