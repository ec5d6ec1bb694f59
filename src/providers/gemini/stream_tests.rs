//! Unit tests of [`super::GeminiStream`], fed with `alt=sse` bodies shaped
//! like the Gemini API reference's streaming examples (CRLF framing, usage
//! on every event, finishReason on the last).

use super::*;
use crate::api::sse::SseDecoder;

/// Runs a whole upstream body through the translator, split at `split`.
fn run(wire: &str, include_usage: bool, split: usize) -> Result<Vec<Value>, TranslateError> {
    let mut decoder = SseDecoder::new();
    let mut stream = GeminiStream::new("gemini-2.5-flash", include_usage);
    let mut out = Vec::new();
    for part in [&wire.as_bytes()[..split], &wire.as_bytes()[split..]] {
        for ev in decoder.decode(part) {
            stream.on_event(&ev, &mut out)?;
        }
    }
    stream.finish(&mut out)?;
    let last = out.pop().unwrap();
    assert_eq!(&last[..], DONE);
    Ok(out
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let payload = text
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\n\n")
                .unwrap();
            serde_json::from_str(payload).unwrap()
        })
        .collect())
}

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect()
}

#[test]
fn streamed_text_with_usage() {
    let wire = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "The quick"}], "role": "model"}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "responseId": "abc"}),
        json!({"candidates": [{"content": {"parts": [{"text": " brown fox"}], "role": "model"}}],
               "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "responseId": "abc"}),
        json!({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13},
               "responseId": "abc"}),
    ]);
    for split in [0, 7, wire.len() / 2, wire.len()] {
        let chunks = run(&wire, true, split).unwrap();
        assert_eq!(chunks.len(), 5, "{chunks:?}");
        for c in &chunks {
            assert_eq!(c["id"], "chatcmpl-abc");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["model"], "gemini-2.5-flash");
            assert_eq!(c["created"], chunks[0]["created"]);
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(chunks[0]["usage"], Value::Null);
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "The quick");
        assert_eq!(chunks[2]["choices"][0]["delta"]["content"], " brown fox");
        assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[4]["choices"], json!([]));
        assert_eq!(
            chunks[4]["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13})
        );
    }
    let without_usage = run(&wire, false, 0).unwrap();
    assert_eq!(without_usage.len(), 4);
    assert!(without_usage.iter().all(|c| c.get("usage").is_none()));
}

#[test]
fn streamed_tool_calls_arrive_whole_with_running_indexes() {
    let wire = sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}, "thoughtSignature": "c2ln"}]}}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"location": "Rome"}}}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 10, "totalTokenCount": 30}}),
    ]);
    let chunks = run(&wire, false, 3).unwrap();
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[1]["content"], "Let me check.");
    let first = &deltas[2]["tool_calls"][0];
    assert_eq!(first["index"], 0);
    assert_eq!(first["type"], "function");
    assert_eq!(
        first["function"],
        json!({"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"})
    );
    let second = &deltas[3]["tool_calls"][0];
    assert_eq!(second["index"], 1);
    assert_eq!(second["function"]["arguments"], "{\"location\":\"Rome\"}");
    assert_ne!(first["id"], second["id"]);
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks.len(), 5);
}

#[test]
fn several_candidates_and_blocked_prompt() {
    let wire = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "A"}]}}, {"content": {"parts": [{"text": "B"}]}, "index": 1}]}),
        json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
                              {"content": {"parts": [{"text": "b"}]}, "index": 1, "finishReason": "MAX_TOKENS"}]}),
    ]);
    let chunks = run(&wire, false, 0).unwrap();
    let finishes: Vec<_> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .map(|c| {
            (
                c["choices"][0]["index"].clone(),
                c["choices"][0]["finish_reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        finishes,
        vec![(json!(0), json!("stop")), (json!(1), json!("length"))]
    );

    let blocked = sse(&[
        json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}),
    ]);
    let chunks = run(&blocked, true, 0).unwrap();
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(chunks[2]["usage"]["prompt_tokens"], 5);
}

#[test]
fn cut_or_failed_streams_are_bad_responses() {
    let cut = sse(&[json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]})]);
    assert!(
        matches!(run(&cut, true, 0), Err(TranslateError::BadResponse(m)) if m.contains("finishReason"))
    );
    assert!(matches!(
        run("", true, 0),
        Err(TranslateError::BadResponse(_))
    ));
    let failed = format!(
        "{}data: {}\r\n\r\n",
        cut,
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})
    );
    assert!(
        matches!(run(&failed, true, 0), Err(TranslateError::BadResponse(m)) if m.contains("UNAVAILABLE"))
    );
    assert!(matches!(
        run("data: {not json\r\n\r\n", true, 0),
        Err(TranslateError::BadResponse(_))
    ));
    let after_finish = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]}),
        json!({"candidates": [{"content": {"parts": [{"text": "y"}]}}]}),
    ]);
    assert!(matches!(
        run(&after_finish, true, 0),
        Err(TranslateError::BadResponse(_))
    ));
}

#[test]
fn finish_twice_emits_done_once() {
    let mut stream = GeminiStream::new("m", false);
    let mut out = Vec::new();
    let ev = SseEvent {
        data:
            json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]})
                .to_string(),
        ..SseEvent::default()
    };
    stream.on_event(&ev, &mut out).unwrap();
    stream.finish(&mut out).unwrap();
    let n = out.len();
    stream.finish(&mut out).unwrap();
    assert_eq!(out.len(), n);
    assert!(stream.on_event(&ev, &mut out).is_err());
}
