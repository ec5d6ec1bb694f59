//! Unit tests of [`super::AnthropicStream`]: reference event streams (text,
//! tool use, thinking, cache usage) and broken ones (error events, early
//! EOF, out-of-order or malformed events).

use super::*;
use crate::api::sse::SseDecoder;

const ID: &str = "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY";

/// Feeds `wire` through the SSE decoder and the translator, then
/// `finish`; returns the frames as JSON ("[DONE]" as a string) and the
/// first error.
fn run(s: &mut AnthropicStream, wire: &str) -> (Vec<Value>, Option<TranslateError>) {
    let mut out = Vec::new();
    let mut result = Ok(());
    for ev in SseDecoder::new().decode(wire.as_bytes()) {
        result = s.on_event(&ev, &mut out);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = s.finish(&mut out);
    }
    (out.iter().map(parse).collect(), result.err())
}

fn parse(frame: &Bytes) -> Value {
    let text = std::str::from_utf8(frame).unwrap();
    let payload = text
        .strip_prefix("data: ")
        .unwrap()
        .strip_suffix("\n\n")
        .unwrap();
    serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.into()))
}

fn ev(data: Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

fn start(input_tokens: u64) -> String {
    ev(
        json!({"type": "message_start", "message": {"id": ID, "type": "message",
        "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null,
        "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
    )
}

fn block(index: u64, content_block: Value) -> String {
    ev(json!({"type": "content_block_start", "index": index, "content_block": content_block}))
}

fn delta(index: u64, delta: Value) -> String {
    ev(json!({"type": "content_block_delta", "index": index, "delta": delta}))
}

fn text(index: u64, text: &str) -> String {
    delta(index, json!({"type": "text_delta", "text": text}))
}

fn args(index: u64, partial_json: &str) -> String {
    delta(
        index,
        json!({"type": "input_json_delta", "partial_json": partial_json}),
    )
}

fn block_stop(index: u64) -> String {
    ev(json!({"type": "content_block_stop", "index": index}))
}

fn end(stop_reason: &str, usage: Value) -> String {
    ev(json!({"type": "message_delta",
              "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage}))
        + &ev(json!({"type": "message_stop"}))
}

fn text_stream() -> String {
    [
        start(25),
        block(0, json!({"type": "text", "text": ""})),
        ev(json!({"type": "ping"})),
        text(0, "Hello"),
        text(0, "!"),
        block_stop(0),
        end("end_turn", json!({"output_tokens": 15})),
    ]
    .concat()
}

#[test]
fn streamed_text_with_usage() {
    let mut s = AnthropicStream::new("my-model", true);
    let (frames, err) = run(&mut s, &text_stream());
    assert_eq!(err, None);
    assert_eq!(frames.len(), 6, "{frames:?}");
    for f in &frames[..5] {
        assert_eq!(f["id"], ID);
        assert_eq!(f["object"], "chat.completion.chunk");
        assert_eq!(f["model"], "my-model");
        assert_eq!(f["created"], frames[0]["created"]);
        assert!(f.get("usage").is_some());
    }
    let delta = |i: usize| frames[i]["choices"][0]["delta"].clone();
    let finish = |i: usize| frames[i]["choices"][0]["finish_reason"].clone();
    assert_eq!(delta(0), json!({"role": "assistant", "content": ""}));
    assert_eq!(delta(1), json!({"content": "Hello"}));
    assert_eq!(delta(2), json!({"content": "!"}));
    assert_eq!(finish(2), Value::Null);
    assert_eq!((delta(3), finish(3)), (json!({}), json!("stop")));
    assert_eq!(frames[3]["usage"], Value::Null);
    assert_eq!(frames[4]["choices"], json!([]));
    assert_eq!(
        frames[4]["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40,
               "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
    );
    assert_eq!(frames[5], "[DONE]");
    // finish is idempotent: no second [DONE].
    let mut more = Vec::new();
    assert_eq!(s.finish(&mut more), Ok(()));
    assert!(more.is_empty());
}

#[test]
fn without_include_usage_there_is_no_usage() {
    let mut s = AnthropicStream::new("m", false);
    let (frames, err) = run(&mut s, &text_stream());
    assert_eq!(err, None);
    assert_eq!(frames.len(), 5);
    assert!(frames.iter().all(|f| f.get("usage").is_none()));
    assert_eq!(frames[4], "[DONE]");
}

#[test]
fn streamed_tool_call_counts_tool_blocks_only() {
    let tool =
        |id: &str, name: &str| json!({"type": "tool_use", "id": id, "name": name, "input": {}});
    let wire = [
        start(472),
        block(0, json!({"type": "text", "text": ""})),
        text(0, "Okay, let's check."),
        block_stop(0),
        block(1, tool("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")),
        args(1, ""),
        args(1, "{\"location\":"),
        args(1, " \"San Francisco, CA\"}"),
        block_stop(1),
        block(2, tool("toolu_2", "now")),
        block_stop(2),
        end("tool_use", json!({"output_tokens": 89})),
    ]
    .concat();
    let mut s = AnthropicStream::new("m", false);
    let (frames, err) = run(&mut s, &wire);
    assert_eq!(err, None);
    assert_eq!(frames.len(), 9, "{frames:?}");
    let delta = |i: usize| frames[i]["choices"][0]["delta"].clone();
    assert_eq!(delta(1), json!({"content": "Okay, let's check."}));
    assert_eq!(
        delta(2),
        json!({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})
    );
    assert_eq!(
        delta(3),
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]})
    );
    let joined: String = (2..5)
        .filter_map(|i| {
            delta(i)["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let parsed: Value = serde_json::from_str(&joined).unwrap();
    assert_eq!(parsed, json!({"location": "San Francisco, CA"}));
    // The second tool block is OpenAI index 1 and, having streamed no input, gets "{}".
    assert_eq!(delta(5)["tool_calls"][0]["index"], 1);
    assert_eq!(delta(5)["tool_calls"][0]["function"]["name"], "now");
    assert_eq!(
        delta(6),
        json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]})
    );
    assert_eq!(frames[7]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(frames[8], "[DONE]");
}

#[test]
fn thinking_becomes_reasoning_content_and_cumulative_usage_is_kept() {
    let wire = [
        start(10),
        block(0, json!({"type": "thinking", "thinking": ""})),
        delta(
            0,
            json!({"type": "thinking_delta", "thinking": "Let me think"}),
        ),
        delta(
            0,
            json!({"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
        ),
        block_stop(0),
        block(1, json!({"type": "text", "text": ""})),
        text(1, "42"),
        block_stop(1),
        ev(json!({"type": "brand_new_event", "x": 1})),
        end(
            "max_tokens",
            json!({"input_tokens": 12, "cache_read_input_tokens": 40,
                                 "cache_creation_input_tokens": 8, "output_tokens": 7}),
        ),
    ]
    .concat();
    let mut s = AnthropicStream::new("m", true);
    let (frames, err) = run(&mut s, &wire);
    assert_eq!(err, None);
    assert_eq!(frames.len(), 6, "{frames:?}");
    assert_eq!(
        frames[1]["choices"][0]["delta"],
        json!({"reasoning_content": "Let me think"})
    );
    assert_eq!(frames[2]["choices"][0]["delta"], json!({"content": "42"}));
    assert_eq!(frames[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(
        frames[4]["usage"],
        json!({"prompt_tokens": 60, "completion_tokens": 7, "total_tokens": 67,
               "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 8}})
    );
}

#[test]
fn error_event_mid_stream() {
    let wire = [
        start(5),
        block(0, json!({"type": "text", "text": ""})),
        text(0, "Hel"),
        ev(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ]
    .concat();
    let mut s = AnthropicStream::new("m", true);
    let (frames, err) = run(&mut s, &wire);
    assert_eq!(frames.len(), 2);
    assert!(
        matches!(err, Some(TranslateError::BadResponse(ref m)) if m.contains("Overloaded")),
        "{err:?}"
    );
    let class = s.upstream_error().unwrap();
    assert!(class.retryable && class.moves_on);
    assert_eq!(class.openai_status, 503);
    let mut out = Vec::new();
    assert!(matches!(
        s.finish(&mut out),
        Err(TranslateError::BadResponse(_))
    ));
    assert!(out.is_empty());
}

#[test]
fn truncated_and_malformed_streams() {
    let mut s = AnthropicStream::new("m", true);
    let (frames, err) = run(
        &mut s,
        &(start(5) + &block(0, json!({"type": "text", "text": ""}))),
    );
    assert_eq!(frames.len(), 1);
    assert!(matches!(err, Some(TranslateError::BadResponse(ref m)) if m.contains("message_stop")));
    assert!(s.upstream_error().is_none());
    let tool = json!({"type": "tool_use", "id": "t", "name": "f", "input": {}});
    for wire in [
        text(0, "before message_start"),
        start(1) + &text(3, "a block never started"),
        start(1) + "event: content_block_delta\ndata: {oops\n\n",
        start(1) + &ev(json!({"type": "message_stop"})),
        start(1) + &block(0, tool) + &text(0, "text on a tool block"),
        start(1) + &start(1),
    ] {
        let mut s = AnthropicStream::new("m", false);
        let (_, err) = run(&mut s, &wire);
        assert!(
            matches!(err, Some(TranslateError::BadResponse(_))),
            "{wire}: {err:?}"
        );
    }
}
