//! Unit tests of [`super::chat_response`], from the response bodies shown
//! in the Gemini API reference (text, function call, blocked prompt).

use super::*;

fn translate(body: Value) -> Value {
    chat_response(body.to_string().as_bytes(), "gemini-2.5-flash").unwrap()
}

#[test]
fn plain_text_with_usage_and_cache() {
    let out = translate(json!({
        "candidates": [{
            "content": {"parts": [{"text": "Hello! "}, {"text": "How can I help?"}], "role": "model"},
            "finishReason": "STOP",
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
        }],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 8, "totalTokenCount": 18,
                          "cachedContentTokenCount": 4},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "Il0taoSYJ5Cez7"
    }));
    assert_eq!(out["id"], "chatcmpl-Il0taoSYJ5Cez7");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "gemini-2.5-flash");
    assert!(out["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        out["choices"],
        json!([{"index": 0, "logprobs": null, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": null}}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18,
               "prompt_tokens_details": {"cached_tokens": 4}})
    );
}

#[test]
fn function_calls_become_tool_calls() {
    let out = translate(json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"location": "Boston, MA"}},
                 "thoughtSignature": "CiQBVKhc7nZ..."},
                {"functionCall": {"name": "get_time"}}
            ]},
            "finishReason": "STOP"
        }],
        "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 12, "thoughtsTokenCount": 50,
                          "totalTokenCount": 92}
    }));
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(
        calls[0]["function"],
        json!({"name": "get_weather", "arguments": "{\"location\":\"Boston, MA\"}"})
    );
    assert_eq!(
        calls[1]["function"],
        json!({"name": "get_time", "arguments": "{}"})
    );
    let (a, b) = (
        calls[0]["id"].as_str().unwrap(),
        calls[1]["id"].as_str().unwrap(),
    );
    assert!(a.starts_with("call_") && b.starts_with("call_") && a != b);
    assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 62, "total_tokens": 92,
               "completion_tokens_details": {"reasoning_tokens": 50}})
    );
}

#[test]
fn finish_reason_mapping() {
    let cases = [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("BLOCKLIST", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("SPII", false, "content_filter"),
        ("LANGUAGE", false, "stop"),
        ("OTHER", false, "stop"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ("FINISH_REASON_UNSPECIFIED", false, "stop"),
    ];
    for (gemini, calls, openai) in cases {
        assert_eq!(finish_reason(gemini, calls), openai, "{gemini}");
    }
    let out = translate(
        json!({"candidates": [{"content": {"parts": [{"text": "partial"}]}, "finishReason": "MAX_TOKENS"}]}),
    );
    assert_eq!(out["choices"][0]["finish_reason"], "length");
    let out = translate(json!({"candidates": [{"finishReason": "SAFETY", "safetyRatings": []}]}));
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["choices"][0]["message"]["content"], "");
}

#[test]
fn blocked_prompt_and_several_candidates() {
    let out = translate(json!({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}
    }));
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["choices"][0]["message"]["content"], "");
    assert_eq!(out["usage"]["prompt_tokens"], 7);

    let out = translate(json!({"candidates": [
        {"content": {"parts": [{"text": "thinking...", "thought": true}, {"text": "A"}]}, "finishReason": "STOP"},
        {"content": {"parts": [{"text": "B"}]}, "finishReason": "STOP", "index": 1}
    ]}));
    let texts: Vec<_> = out["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["index"].clone(), c["message"]["content"].clone()))
        .collect();
    assert_eq!(texts, vec![(json!(0), json!("A")), (json!(1), json!("B"))]);
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    );
}

#[test]
fn malformed_bodies_are_bad_responses() {
    let bad = |body: &[u8]| {
        matches!(
            chat_response(body, "m"),
            Err(TranslateError::BadResponse(_))
        )
    };
    assert!(bad(b"not json"));
    assert!(bad(b"{}"));
    assert!(bad(
        br#"{"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}"#
    ));
    assert!(bad(br#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": [1]}}]}}]}"#));
    let err = chat_response(
        br#"{"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}"#,
        "m",
    );
    assert!(matches!(err, Err(TranslateError::BadResponse(m)) if m.contains("INTERNAL")));
}
