//! Fakes that report fixed, distinct token counts (provider-cached prompt
//! tokens included), so the usage tests can expect exact numbers.
//!
//! [`openai`]: an OpenAI-compatible server. Chat and text completions as
//! JSON, or as SSE where every chunk carries `"usage": null` and a final
//! `{"choices": [], "usage": ...}` chunk comes only when the request asked
//! (`stream_options.include_usage`), as OpenAI does; the Responses API as
//! JSON or its event stream (usage in `response.completed`); embeddings as
//! [`super::embeddings_reply`] (2 tokens per input). [`anthropic`]: the
//! Messages API as JSON or its event stream (input tokens in
//! `message_start`, output tokens in `message_delta`), with cache reads
//! and writes.

use std::time::Duration;

use serde_json::{Value, json};

use super::{FakeUpstream, Reply};

/// Expected accounting: (prompt, completion, cached).
pub type Counts = (f64, f64, f64);

/// Chat: 12 prompt tokens (4 of them cached), 5 completion tokens.
pub const CHAT: Counts = (12.0, 5.0, 4.0);
/// Text completions: 7 prompt, 3 completion.
pub const COMPLETIONS: Counts = (7.0, 3.0, 0.0);
/// Responses API: 9 input (2 cached), 4 output.
pub const RESPONSES: Counts = (9.0, 4.0, 2.0);
/// Anthropic: 10 uncached input + 5 cache writes + 30 cache reads, 7 output.
pub const ANTHROPIC: Counts = (45.0, 7.0, 30.0);

fn chat_usage() -> Value {
    json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
           "prompt_tokens_details": {"cached_tokens": 4}})
}

fn data(v: Value) -> String {
    format!("data: {v}\n\n")
}

/// Chunks of `object` (chat or text completion) with two pieces of text;
/// `usage: null` on each and a usage chunk at the end when asked.
fn openai_stream(body: &Value, object: &str, usage: Value) -> Vec<String> {
    let asked = body["stream_options"]["include_usage"] == true;
    let choice = |text: &str, finish: Value| {
        if object == "text_completion" {
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": finish})
        }
    };
    let chunk = |choices: Value, usage: Value| {
        let mut c = json!({"id": "fake-1", "object": object, "created": 1,
                           "model": body["model"], "choices": choices});
        if asked {
            c["usage"] = usage;
        }
        data(c)
    };
    let mut events = vec![
        chunk(json!([choice("Hello", Value::Null)]), Value::Null),
        chunk(json!([choice(" there", json!("stop"))]), Value::Null),
    ];
    if asked {
        events.push(chunk(json!([]), usage));
    }
    events.push("data: [DONE]\n\n".to_string());
    events
}

pub async fn openai() -> FakeUpstream {
    FakeUpstream::start(|s, _| async move {
        let stream = s.body["stream"] == true;
        match s.path.as_str() {
            "/v1/chat/completions" if stream => Reply::Sse(
                openai_stream(&s.body, "chat.completion.chunk", chat_usage()),
                Duration::ZERO,
            ),
            "/v1/chat/completions" => Reply::Json(
                200,
                json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                       "model": s.body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "Hello there"}}],
                       "usage": chat_usage()}),
            ),
            "/v1/completions" => {
                let usage = json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10});
                if stream {
                    Reply::Sse(
                        openai_stream(&s.body, "text_completion", usage),
                        Duration::ZERO,
                    )
                } else {
                    Reply::Json(
                        200,
                        json!({"id": "cmpl-1", "object": "text_completion", "created": 1,
                               "model": s.body["model"],
                               "choices": [{"index": 0, "text": "Hello there", "logprobs": null,
                                            "finish_reason": "stop"}],
                               "usage": usage}),
                    )
                }
            }
            "/v1/responses" => {
                let mut resp = super::responses::answer(&s.body);
                resp["usage"] = json!({"input_tokens": 9, "input_tokens_details": {"cached_tokens": 2},
                                       "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                                       "total_tokens": 13});
                if stream {
                    Reply::Sse(super::responses::events(&resp), Duration::ZERO)
                } else {
                    Reply::Json(200, resp)
                }
            }
            _ => super::default_reply(&s),
        }
    })
    .await
}

fn named(name: &str, v: Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}

pub async fn anthropic() -> FakeUpstream {
    FakeUpstream::start(|s, _| async move {
        let usage = json!({"input_tokens": 10, "cache_creation_input_tokens": 5,
                           "cache_read_input_tokens": 30, "output_tokens": 7});
        if s.body["stream"] != true {
            return Reply::Json(
                200,
                json!({"id": "msg_1", "type": "message", "role": "assistant",
                       "model": s.body["model"], "content": [{"type": "text", "text": "Hello there"}],
                       "stop_reason": "end_turn", "stop_sequence": null, "usage": usage}),
            );
        }
        let mut start_usage = usage.clone();
        start_usage["output_tokens"] = json!(1);
        let events = vec![
            named(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                       "role": "assistant", "model": s.body["model"], "content": [],
                       "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
            ),
            named(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
            named(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": "Hello there"}}),
            ),
            named(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            named(
                "message_delta",
                json!({"type": "message_delta",
                       "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                       "usage": {"output_tokens": 7}}),
            ),
            named("message_stop", json!({"type": "message_stop"})),
        ];
        Reply::Sse(events, Duration::ZERO)
    })
    .await
}
