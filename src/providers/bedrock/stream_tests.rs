//! ConverseStream events to OpenAI chunks: text with usage, tool calls
//! from argument fragments, exceptions and early ends as bad answers,
//! unknown events skipped and reasoning kept.

use super::*;
use crate::api::sse::SseDecoder;

fn event(event_type: &str, payload: Value) -> EventMessage {
    event_bytes(event_type, payload.to_string())
}

fn event_bytes(event_type: &str, payload: impl Into<Bytes>) -> EventMessage {
    let headers = [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ];
    EventMessage::with_strings(&headers, payload)
}

/// Runs events through a stream; returns the chunks (`None` for [DONE]).
fn run(events: &[EventMessage], include_usage: bool) -> Result<Vec<Option<Value>>, TranslateError> {
    let mut stream = BedrockStream::new("my-model", include_usage);
    let mut out = Vec::new();
    for e in events {
        stream.on_message(e, &mut out)?;
    }
    stream.finish(&mut out)?;
    let mut decoder = SseDecoder::new();
    let mut frames = Vec::new();
    for bytes in &out {
        frames.extend(decoder.decode(bytes));
    }
    Ok(frames
        .iter()
        .map(|f| (f.data != "[DONE]").then(|| serde_json::from_str(&f.data).unwrap()))
        .collect())
}

fn text_events() -> Vec<EventMessage> {
    vec![
        event("messageStart", json!({"p": "abcd", "role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}, "p": "ab"}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": "end_turn"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 10, "outputTokens": 2, "totalTokens": 12},
                                 "metrics": {"latencyMs": 100}}),
        ),
    ]
}

#[test]
fn streamed_text_with_usage() {
    let chunks = run(&text_events(), true).unwrap();
    assert_eq!(chunks.len(), 6);
    let first = chunks[0].as_ref().unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "my-model");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(
        chunks[1].as_ref().unwrap()["choices"][0]["delta"],
        json!({"content": "Hel"})
    );
    assert_eq!(
        chunks[2].as_ref().unwrap()["choices"][0]["delta"],
        json!({"content": "lo"})
    );
    let last = chunks[3].as_ref().unwrap();
    assert_eq!(
        last["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "stop"})
    );
    let usage = chunks[4].as_ref().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12})
    );
    assert!(chunks[5].is_none(), "[DONE] last");
    let ids: Vec<_> = chunks
        .iter()
        .flatten()
        .map(|c| (c["id"].clone(), c["created"].clone()))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id and created");
    // Without include_usage: no usage chunk.
    assert_eq!(run(&text_events(), false).unwrap().len(), 5);
}

#[test]
fn streamed_tool_call_with_argument_fragments() {
    let events = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12}}),
        ),
    ];
    let chunks = run(&events, false).unwrap();
    let deltas: Vec<&Value> = chunks
        .iter()
        .flatten()
        .map(|c| &c["choices"][0]["delta"])
        .collect();
    assert_eq!(
        deltas[2],
        &json!({"tool_calls": [{"index": 0, "id": "tooluse_abc", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]})
    );
    assert_eq!(
        deltas[3],
        &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})
    );
    assert_eq!(
        deltas[4],
        &json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]})
    );
    let finish = chunks[5].as_ref().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn exceptions_and_early_eof_are_bad_responses() {
    let exception = EventMessage::with_strings(
        &[
            (":exception-type", "modelStreamErrorException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        Bytes::from_static(br#"{"message":"model crashed"}"#),
    );
    let mut events = text_events();
    events.insert(2, exception);
    let err = run(&events, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("modelStreamErrorException: model crashed"),
        "{err}"
    );

    let no_stop = &text_events()[..4];
    assert!(
        run(no_stop, true)
            .unwrap_err()
            .to_string()
            .contains("before messageStop")
    );
    let no_metadata = &text_events()[..5];
    assert!(
        run(no_metadata, true)
            .unwrap_err()
            .to_string()
            .contains("metadata")
    );

    let orphan = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}),
        ),
    ];
    assert!(matches!(
        run(&orphan, false),
        Err(TranslateError::BadResponse(_))
    ));
    let malformed = vec![event(
        "messageStop",
        json!({"stopReason": "malformed_tool_use"}),
    )];
    assert!(matches!(
        run(&malformed, false),
        Err(TranslateError::BadResponse(_))
    ));
    let not_json = event_bytes("metadata", Bytes::from_static(b"{"));
    assert!(matches!(
        run(&[not_json], false),
        Err(TranslateError::BadResponse(_))
    ));
}

#[test]
fn unknown_events_are_skipped_and_reasoning_kept() {
    let mut events = text_events();
    events.insert(1, event("somethingNew", json!({"x": 1})));
    events.insert(
        2,
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0,
        "delta": {"reasoningContent": {"text": "thinking"}}}),
        ),
    );
    let chunks = run(&events, true).unwrap();
    assert_eq!(chunks.len(), 7);
    assert!(chunks.iter().any(|c| {
        c.as_ref()
            .is_some_and(|c| c["choices"][0]["delta"]["reasoning_content"] == "thinking")
    }));
}
