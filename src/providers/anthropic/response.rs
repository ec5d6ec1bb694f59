//! Anthropic non-streaming `Message` -> OpenAI `chat.completion`.
//!
//! Place in the pipeline: called on a 2xx, non-streaming upstream answer.
//! `text` blocks are joined into `message.content`; `tool_use` blocks become
//! `message.tool_calls` (arguments re-serialised as a JSON string);
//! `thinking` blocks are joined into `message.reasoning_content` (the field
//! OpenAI-compatible servers use; Anthropic sends them only when the request
//! asked for thinking). Redacted thinking and server-tool blocks are left
//! out (OpenAI chat has no place for them). The message `id` is kept as the completion id; `created`
//! is the local time (Anthropic sends none). Also holds the stop-reason and
//! usage mappings shared with [`super::stream`]. Must not put upstream bodies
//! into error messages.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::providers::translate::TranslateError;

/// Seconds since the Unix epoch, for `created`.
pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Anthropic `stop_reason` -> OpenAI `finish_reason`. Unknown future values
/// map to `stop` (the turn did end).
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => "stop",
    }
}

/// Token counts as Anthropic reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// OpenAI `usage`: prompt tokens include cache reads and cache writes
    /// (Anthropic's `input_tokens` counts neither); cache reads are also
    /// reported as `prompt_tokens_details.cached_tokens`, cache writes as
    /// `prompt_tokens_details.cache_write_tokens`.
    pub fn to_openai(&self) -> Value {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .saturating_add(cached)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0));
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output_tokens,
            "total_tokens": prompt.saturating_add(self.output_tokens),
            "prompt_tokens_details": {
                "cached_tokens": cached,
                "cache_write_tokens": self.cache_creation_input_tokens.unwrap_or(0),
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    Thinking {
        thinking: String,
    },
    /// redacted_thinking, server tool blocks, future types.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Usage,
}

fn bad(message: impl Into<String>) -> TranslateError {
    TranslateError::BadResponse(message.into())
}

/// Translates a Messages API response body into an OpenAI chat completion
/// naming `model`.
pub fn chat_response(upstream: &[u8], model: &str) -> Result<Value, TranslateError> {
    let msg: Message = serde_json::from_slice(upstream).map_err(|e| {
        bad(format!(
            "not a Messages API message (line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    if msg.kind != "message" {
        return Err(bad("the body's 'type' is not 'message'"));
    }
    let stop_reason = msg
        .stop_reason
        .as_deref()
        .ok_or_else(|| bad("message without a stop_reason"))?;
    let mut text: Option<String> = None;
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in msg.content {
        match block {
            Block::Text { text: t } => match &mut text {
                Some(all) => all.push_str(&t),
                None => text = Some(t),
            },
            Block::ToolUse { id, name, input } => {
                let arguments = serde_json::to_string(&input)
                    .map_err(|_| bad("tool_use input cannot be serialised"))?;
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }));
            }
            Block::Thinking { thinking } => reasoning.push_str(&thinking),
            Block::Other => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        // OpenAI: null when the answer is only tool calls.
        "content": match (text, tool_calls.is_empty()) {
            (Some(t), _) => Value::String(t),
            (None, true) => Value::String(String::new()),
            (None, false) => Value::Null,
        },
        "refusal": null,
    });
    if let Some(m) = message.as_object_mut() {
        if !tool_calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(tool_calls));
        }
        if !reasoning.is_empty() {
            m.insert("reasoning_content".into(), Value::String(reasoning));
        }
    }
    Ok(json!({
        "id": msg.id,
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(stop_reason),
        }],
        "usage": msg.usage.to_openai(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_message() {
        let body = br#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant",
            "content":[{"type":"text","text":"Hi! My name is Claude."}],"model":"claude-sonnet-4-5",
            "stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":2095,"output_tokens":503}}"#;
        let out = chat_response(body, "my-model").unwrap();
        assert_eq!(out["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["model"], "my-model");
        assert!(out["created"].as_u64().is_some_and(|t| t > 1_600_000_000));
        assert_eq!(
            out["choices"],
            json!([{"index": 0, "logprobs": null, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": null}}])
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
                   "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
        );
    }

    #[test]
    fn tool_use_with_text_thinking_and_cache_usage() {
        let body = br#"{"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","model":"claude-sonnet-4-5",
            "content":[
              {"type":"thinking","thinking":"The user wants weather.","signature":"EqQB"},
              {"type":"text","text":"I'll check the current weather in San Francisco for you."},
              {"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather",
               "input":{"location":"San Francisco, CA","unit":"celsius"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":50,"cache_creation_input_tokens":20,"cache_read_input_tokens":100,"output_tokens":30}}"#;
        let out = chat_response(body, "m").unwrap();
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(
            choice["message"]["content"],
            "I'll check the current weather in San Francisco for you."
        );
        assert_eq!(
            choice["message"]["reasoning_content"],
            "The user wants weather."
        );
        let calls = &choice["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 170, "completion_tokens": 30, "total_tokens": 200,
                   "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20}})
        );
    }

    #[test]
    fn only_tool_calls_means_null_content() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"c",
            "content":[{"type":"tool_use","id":"toolu_1","name":"now","input":{}}],
            "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}"#;
        let out = chat_response(body, "m").unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
    }

    #[test]
    fn stop_reason_mapping() {
        for (reason, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(finish_reason(reason), finish, "{reason}");
            let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
                "content": [], "stop_reason": reason, "usage": {"input_tokens": 1, "output_tokens": 0}});
            let out = chat_response(body.to_string().as_bytes(), "m").unwrap();
            assert_eq!(out["choices"][0]["finish_reason"], finish);
            assert_eq!(out["choices"][0]["message"]["content"], "");
        }
    }

    #[test]
    fn malformed_answers_are_bad_responses() {
        for body in [
            &b"not json"[..],
            br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
            br#"{"id":"m","type":"message","content":[],"usage":{"input_tokens":1,"output_tokens":1}}"#,
            br#"{"id":"m","type":"message","content":[{"type":"text"}],"stop_reason":"end_turn","usage":{}}"#,
            br#"{"id":"m","type":"message","content":[],"stop_reason":"end_turn"}"#,
        ] {
            let r = chat_response(body, "m");
            assert!(matches!(r, Err(TranslateError::BadResponse(_))), "{r:?}");
        }
    }
}
