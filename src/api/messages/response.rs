//! OpenAI chat completion -> Messages response, for targets that do not
//! speak Messages natively.
//!
//! Place in the pipeline: called by `routing` on a whole (non-streaming)
//! chat answer. The first choice becomes the content blocks (the target's
//! reasoning, `reasoning_content` or `reasoning`, as a `thinking` block
//! first when the client asked for thinking; its text as a `text` block;
//! each tool call as a `tool_use` block with its arguments parsed into
//! `input`), `finish_reason` becomes `stop_reason` and the usage becomes
//! `input_tokens` / `output_tokens`, with the prompt tokens the provider
//! served from its cache as `cache_read_input_tokens` and those it wrote to
//! it (`prompt_tokens_details.cache_write_tokens`) as
//! `cache_creation_input_tokens` (Anthropic's `input_tokens` leaves both
//! out). A thinking block carries an empty `signature`: the gateway has
//! none to give. Must not do I/O.

use serde_json::{Value, json};

use super::MessagesError;

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A tool call's `arguments` string as the `input` object.
pub fn tool_input(arguments: &str) -> Result<Value, MessagesError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments)
        .map_err(|_| MessagesError::BadAnswer("tool call arguments are not JSON".into()))
}

/// The reasoning text of a chat message or delta (`reasoning_content`, as
/// vLLM and DeepSeek send it, or `reasoning`), if any.
pub fn reasoning_text(message: &Value) -> Option<&str> {
    message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
}

/// The Messages response for the chat completion `bytes`; `model` names
/// the model when the answer does not; `thinking`: the client asked for
/// thinking blocks.
pub fn from_chat(bytes: &[u8], model: &str, thinking: bool) -> Result<Value, MessagesError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| MessagesError::BadAnswer("not JSON".into()))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| MessagesError::BadAnswer("no choices".into()))?;
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if thinking && let Some(t) = reasoning_text(msg) {
        content.push(json!({"type": "thinking", "thinking": t, "signature": ""}));
    }
    if let Some(text) = msg.get("content").and_then(Value::as_str)
        && !text.is_empty()
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = call.get("function").unwrap_or(&Value::Null);
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
            "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
            "input": tool_input(args)?,
        }));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let usage = v.get("usage").unwrap_or(&Value::Null);
    let tokens = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    let detail = |k: &str| {
        usage
            .get("prompt_tokens_details")
            .and_then(|d| d.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let id = v.get("id").and_then(Value::as_str).unwrap_or("switchyard");
    Ok(json!({
        "id": message_id(id),
        "type": "message",
        "role": "assistant",
        "model": v.get("model").and_then(Value::as_str).unwrap_or(model),
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage_of(
            tokens("prompt_tokens"),
            tokens("completion_tokens"),
            detail("cached_tokens"),
            detail("cache_write_tokens"),
        ),
    }))
}

/// Anthropic's usage object for chat's counts: `input_tokens` without the
/// prompt tokens read from the provider's cache (`cache_read_input_tokens`)
/// or written to it (`cache_creation_input_tokens`), each sent only when
/// there are some.
pub fn usage_of(prompt: u64, completion: u64, cached: u64, written: u64) -> Value {
    let cached = cached.min(prompt);
    let written = written.min(prompt - cached);
    let input = prompt - cached - written;
    let mut usage = json!({"input_tokens": input, "output_tokens": completion});
    if written > 0 {
        usage["cache_creation_input_tokens"] = json!(written);
    }
    if cached > 0 {
        usage["cache_read_input_tokens"] = json!(cached);
    }
    usage
}

/// A Messages id (`msg_...`) from a chat completion id.
pub fn message_id(chat_id: &str) -> String {
    if chat_id.starts_with("msg_") {
        chat_id.to_string()
    } else {
        format!("msg_{chat_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tools_stop_reason_and_usage_translate() {
        let chat = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me look.",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "get", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        });
        let out = from_chat(chat.to_string().as_bytes(), "r", false).unwrap();
        assert_eq!(
            out,
            json!({
                "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
                "content": [{"type": "text", "text": "Let me look."},
                            {"type": "tool_use", "id": "call_1", "name": "get", "input": {"city": "Paris"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 11, "output_tokens": 7}
            })
        );
    }

    #[test]
    fn cached_prompt_tokens_become_cache_reads_outside_input_tokens() {
        let chat = json!({
            "id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 2,
                      "prompt_tokens_details": {"cached_tokens": 24, "cache_write_tokens": 4}}
        });
        let out = from_chat(chat.to_string().as_bytes(), "r", false).unwrap();
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 2, "output_tokens": 2, "cache_read_input_tokens": 24,
                   "cache_creation_input_tokens": 4})
        );
    }

    #[test]
    fn reasoning_becomes_a_thinking_block_only_when_asked() {
        let chat = json!({
            "id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "42", "reasoning_content": "6 times 7"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}
        });
        let out = from_chat(chat.to_string().as_bytes(), "r", true).unwrap();
        assert_eq!(
            out["content"],
            json!([{"type": "thinking", "thinking": "6 times 7", "signature": ""},
                   {"type": "text", "text": "42"}])
        );
        let out = from_chat(chat.to_string().as_bytes(), "r", false).unwrap();
        assert_eq!(out["content"], json!([{"type": "text", "text": "42"}]));
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(stop_reason("stop"), "end_turn");
        assert_eq!(stop_reason("length"), "max_tokens");
        assert_eq!(stop_reason("tool_calls"), "tool_use");
        assert_eq!(stop_reason("content_filter"), "refusal");
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(from_chat(b"nope", "r", false).is_err());
        assert!(from_chat(br#"{"choices":[]}"#, "r", false).is_err());
        let bad_args = json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}}]});
        assert!(from_chat(bad_args.to_string().as_bytes(), "r", false).is_err());
    }
}
