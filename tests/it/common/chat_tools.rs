//! An OpenAI-compatible chat fake that calls tools, in JSON and SSE, for
//! the Messages translation tests (tests/it/messages.rs, tests/it/sdk_anthropic.rs).
//! It follows the chat completions API: tool calls streamed as
//! `delta.tool_calls` fragments (id and name first, then argument pieces),
//! `finish_reason`, a usage chunk when `stream_options.include_usage`, and
//! `data: [DONE]`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{FakeUpstream, Reply, Seen};

/// An OpenAI-compatible chat fake: with tools (and no tool result yet) it
/// says a few words and calls the first tool with `{"location":"Paris"}`;
/// after a tool result it answers `Tool said: <result>`; else `Hello there`.
pub async fn chat_fake() -> FakeUpstream {
    FakeUpstream::start(|s: Seen, _| async move { chat_answer(&s.body) }).await
}

fn chat_answer(body: &Value) -> Reply {
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let last = msgs.last().cloned().unwrap_or_default();
    let tool = body["tools"][0]["function"]["name"]
        .as_str()
        .map(str::to_string);
    let (text, call) = match (&tool, last["role"].as_str()) {
        (_, Some("tool")) => (
            format!("Tool said: {}", last["content"].as_str().unwrap_or("")),
            None,
        ),
        (Some(name), _) => ("Let me check.".to_string(), Some(name.clone())),
        _ => ("Hello there".to_string(), None),
    };
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    if body["stream"] != true {
        let mut message = json!({"role": "assistant", "content": text});
        if let Some(name) = &call {
            message["tool_calls"] = json!([{"id": "call_1", "type": "function",
                "function": {"name": name, "arguments": "{\"location\":\"Paris\"}"}}]);
        }
        return Reply::Json(
            200,
            json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}}),
        );
    }
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-2", "object": "chat.completion.chunk",
            "created": 1, "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let cut = text.len() / 2;
    let mut events = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": &text[..cut]}), Value::Null),
        chunk(json!({"content": &text[cut..]}), Value::Null),
    ];
    if let Some(name) = &call {
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in ["{\"location\":", "\"Paris\"}"] {
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
            json!({"id": "chatcmpl-2", "object": "chat.completion.chunk",
            "created": 1, "model": body["model"], "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}})
        ));
    }
    events.push("data: [DONE]\n\n".into());
    Reply::Sse(events, Duration::ZERO)
}
