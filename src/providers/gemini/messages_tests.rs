//! OpenAI messages to Gemini contents: system, user and assistant turns
//! and their merging, images, audio and files, tool-call round trips, and
//! bad or unsupported messages refused.

use super::*;

fn conv(messages: Value) -> Conversation {
    convert(messages.as_array().unwrap(), true).unwrap()
}

#[test]
fn system_user_assistant_and_merging() {
    let c = conv(json!([
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": "Hi", "name": "ann"},
        {"role": "user", "content": [{"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"}
    ]));
    assert_eq!(
        c.system,
        vec![
            json!({"text": "Be brief."}),
            json!({"text": "Use metric units."})
        ]
    );
    assert_eq!(
        Value::Array(c.contents),
        json!([
            {"role": "user", "parts": [{"text": "Hi"}, {"text": "there"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Bye"}]}
        ])
    );
}

#[test]
fn images_audio_and_files() {
    let c = conv(json!([{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.WEBP?x=1"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
    ]}]));
    assert_eq!(
        c.contents[0]["parts"],
        json!([
            {"text": "What is in these?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.WEBP?x=1"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
        ])
    );
}

#[test]
fn tool_call_round_trip() {
    let c = conv(json!([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp\": 21}"},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
        {"role": "user", "content": "Thanks"}
    ]));
    assert_eq!(
        Value::Array(c.contents),
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": PLACEHOLDER_SIGNATURE},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
                {"text": "Thanks"}
            ]}
        ])
    );
    let unsigned = convert(
        &[json!({"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})],
        false,
    )
    .unwrap();
    assert!(has_no_signature(&unsigned.contents[0]["parts"][0]));
}

fn has_no_signature(part: &Value) -> bool {
    part.get("thoughtSignature").is_none()
}

#[test]
fn bad_and_unsupported_messages() {
    let err = |m: Value| convert(m.as_array().unwrap(), true).err().unwrap();
    assert!(matches!(
        err(json!([{"role": "tool", "tool_call_id": "nope", "content": "x"}])),
        TranslateError::InvalidRequest(m) if m.contains("matches no earlier")
    ));
    assert!(matches!(
        err(json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "[1]"}}]}])),
        TranslateError::InvalidRequest(m) if m.contains("not a JSON object")
    ));
    assert!(matches!(
        err(json!([{"role": "function", "name": "f", "content": "x"}])),
        TranslateError::Unsupported { .. }
    ));
    assert!(matches!(
        err(
            json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}])
        ),
        TranslateError::Unsupported { .. }
    ));
    assert!(matches!(
        err(
            json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}])
        ),
        TranslateError::Unsupported { .. }
    ));
    assert!(matches!(
        err(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}])
        ),
        TranslateError::InvalidRequest(_)
    ));
}
