//! Unit tests of [`super::CohereStream`], from the Cohere reference's own
//! stream examples.

use super::*;
use crate::api::sse::SseDecoder;

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

/// Feeds `text` byte-split in two, returns the chunks' JSON, `[DONE]` seen
/// and the end result.
fn run(text: &str, include_usage: bool) -> (Vec<Value>, bool, Result<(), TranslateError>) {
    let mut s = CohereStream::new("command-a", include_usage);
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    let (a, b) = text.as_bytes().split_at(text.len() / 2);
    let mut result = Ok(());
    'feed: for part in [a, b] {
        for ev in decoder.decode(part) {
            if let Err(e) = s.on_event(&ev, &mut out) {
                result = Err(e);
                break 'feed;
            }
        }
    }
    if result.is_ok() {
        result = s.finish(&mut out);
    }
    let mut done = false;
    let mut chunks = Vec::new();
    for frame in &out {
        let text = std::str::from_utf8(frame).unwrap();
        assert!(
            text.starts_with("data: ") && text.ends_with("\n\n"),
            "{text}"
        );
        let payload = &text[6..text.len() - 2];
        if payload == "[DONE]" {
            done = true;
        } else {
            assert!(!done, "a chunk after [DONE]");
            chunks.push(serde_json::from_str(payload).unwrap());
        }
    }
    (chunks, done, result)
}

fn text_stream() -> Vec<Value> {
    vec![
        json!({"type": "message-start", "id": "29f14a5a-11de-4cae-9800-25e4747408ea",
               "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "LL"}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Ms"}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": " stand"}}}}),
        json!({"type": "content-end", "index": 0}),
        json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
            "billed_units": {"input_tokens": 5, "output_tokens": 26},
            "tokens": {"input_tokens": 71, "output_tokens": 26}}}}),
    ]
}

#[test]
fn text_with_usage() {
    let (chunks, done, end) = run(&sse(&text_stream()), true);
    assert!(end.is_ok() && done);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], "29f14a5a-11de-4cae-9800-25e4747408ea");
        assert_eq!(c["model"], "command-a");
        assert_eq!(c["created"], chunks[0]["created"]);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "LLMs stand");
    let last = &chunks[chunks.len() - 2];
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 71, "completion_tokens": 26, "total_tokens": 97})
    );
    // Without include_usage: no usage chunk.
    let (chunks, done, _) = run(&sse(&text_stream()), false);
    assert!(done);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn tool_calls_with_argument_fragments() {
    let mut events = vec![
        json!({"type": "message-start", "id": "2edfdf70-019c-4f7a-be20-3cdbfaa3dca6", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": " look it up."}}}),
    ];
    for (i, (id, name, parts)) in [
        (
            "query_daily_sales_report_j3f0adww9pmr",
            "query_daily_sales_report",
            ["{\"", "day", "\": \"", "2023-09-29", "\"}"],
        ),
        (
            "query_product_catalog_c66nf11r6s8g",
            "query_product_catalog",
            ["{\"", "category", "\": \"", "Electronics", "\"}"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(
            json!({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": {
            "id": id, "type": "function", "function": {"name": name, "arguments": ""}}}}}),
        );
        for p in parts {
            events.push(json!({"type": "tool-call-delta", "index": i, "delta": {"message": {"tool_calls": {"function": {"arguments": p}}}}}));
        }
        events.push(json!({"type": "tool-call-end", "index": i}));
    }
    events.push(
        json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {
        "billed_units": {"input_tokens": 37, "output_tokens": 75}}}}),
    );
    let (chunks, done, end) = run(&sse(&events), false);
    assert!(end.is_ok() && done);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .map(|t| &t[0])
        .collect();
    assert_eq!(
        *calls[0],
        json!({"index": 0, "id": "query_daily_sales_report_j3f0adww9pmr", "type": "function",
               "function": {"name": "query_daily_sales_report", "arguments": ""}})
    );
    assert_eq!(
        *calls[1],
        json!({"index": 0, "function": {"arguments": "{\""}})
    );
    let args = |index: u64| -> String {
        calls
            .iter()
            .filter(|c| c["index"] == index)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect()
    };
    assert_eq!(args(0), "{\"day\": \"2023-09-29\"}");
    assert_eq!(args(1), "{\"category\": \"Electronics\"}");
    assert!(
        calls
            .iter()
            .any(|c| c["index"] == 1 && c["id"] == "query_product_catalog_c66nf11r6s8g")
    );
    assert!(chunks.iter().all(|c| {
        c["choices"][0]["delta"]
            .get("content")
            .is_none_or(|t| t == "")
    }));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn broken_and_failed_streams() {
    let mut cut = text_stream();
    cut.pop();
    let (chunks, done, end) = run(&sse(&cut), true);
    assert!(!done && !chunks.is_empty());
    assert!(matches!(end, Err(TranslateError::BadResponse(m)) if m.contains("message-end")));
    let mut failed = text_stream();
    failed.pop();
    failed.push(json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal error"}}));
    let (_, done, end) = run(&sse(&failed), true);
    assert!(!done);
    assert!(matches!(end, Err(TranslateError::BadResponse(m)) if m.contains("internal error")));
    let mut timeout = text_stream();
    timeout.pop();
    timeout.push(json!({"type": "message-end", "delta": {"finish_reason": "TIMEOUT"}}));
    assert!(matches!(
        run(&sse(&timeout), false).2,
        Err(TranslateError::BadResponse(_))
    ));
    let error = "data: {\"message\": \"too many tokens\"}\n\n";
    assert!(
        matches!(run(error, false).2, Err(TranslateError::BadResponse(m)) if m.contains("too many tokens"))
    );
    assert!(matches!(
        run("data: nope\n\n", false).2,
        Err(TranslateError::BadResponse(_))
    ));
}

#[test]
fn max_tokens_and_a_trailing_done_marker() {
    let mut events = text_stream();
    events.pop();
    events.push(json!({"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS"}}));
    let text = format!("{}data: [DONE]\n\n", sse(&events));
    let (chunks, done, end) = run(&text, true);
    assert!(end.is_ok() && done);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 0);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );
}
