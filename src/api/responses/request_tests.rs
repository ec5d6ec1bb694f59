//! Unit tests of the Responses -> chat request translation.

use serde_json::{Value, json};

use super::*;

fn chat(body: Value) -> Result<Map<String, Value>, ResponsesError> {
    to_chat(body.as_object().unwrap()).map(|c| c.body)
}

#[test]
fn string_input_and_instructions_become_messages() {
    let c = chat(
        json!({"model": "m", "input": "hi", "instructions": "Be brief.",
                        "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9}),
    )
    .unwrap();
    assert_eq!(
        c["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(c["max_tokens"], 50);
    assert_eq!(c["temperature"], 0.2);
    assert_eq!(c["top_p"], 0.9);
    assert!(c.get("stream").is_none());
}

#[test]
fn message_items_parts_and_images() {
    let c = chat(json!({"model": "m", "stream": true, "input": [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "a cat"}]},
        {"role": "user", "content": "thanks"}]}))
    .unwrap();
    let m = c["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "rules"}));
    assert_eq!(m[1]["content"][0], json!({"type": "text", "text": "look"}));
    assert_eq!(
        m[1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}})
    );
    assert_eq!(m[2], json!({"role": "assistant", "content": "a cat"}));
    assert_eq!(c["stream"], true);
    assert_eq!(c["stream_options"]["include_usage"], true);
}

#[test]
fn tools_calls_and_outputs_round_trip() {
    let c = chat(json!({"model": "m",
        "tools": [{"type": "function", "name": "get_weather", "description": "d",
                   "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "input": [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]}]}))
    .unwrap();
    assert_eq!(
        c["tools"][0],
        json!({"type": "function", "function": {"name": "get_weather", "description": "d",
               "parameters": {"type": "object"}, "strict": true}})
    );
    assert_eq!(
        c["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    let m = c["messages"].as_array().unwrap();
    assert_eq!(m.len(), 4, "{m:?}");
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(m[1]["tool_calls"][1]["id"], "call_2");
    assert_eq!(m[1]["tool_calls"][1]["function"]["arguments"], "{\"x\":1}");
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    );
    assert_eq!(m[3]["content"], "rain");
    for choice in ["auto", "none", "required"] {
        let c = chat(json!({"model": "m", "input": "x", "tool_choice": choice})).unwrap();
        assert_eq!(c["tool_choice"], choice);
    }
}

#[test]
fn text_formats_become_response_formats() {
    let schema =
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
    let c = chat(json!({"model": "m", "input": "x", "text": {"format": {
        "type": "json_schema", "name": "thing", "schema": schema, "strict": true}}}))
    .unwrap();
    assert_eq!(
        c["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": true}})
    );
    let c = chat(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}))
        .unwrap();
    assert_eq!(c["response_format"], json!({"type": "json_object"}));
    let c =
        chat(json!({"model": "m", "input": "x", "text": {"format": {"type": "text"}}})).unwrap();
    assert!(c.get("response_format").is_none());
}

#[test]
fn stateful_and_builtin_features_are_refused_by_name() {
    let cases = [
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"background": true}), "background"),
        (json!({"store": true}), "store"),
        (json!({"tools": [{"type": "web_search"}]}), "web_search"),
        (
            json!({"tools": [{"type": "file_search", "vector_store_ids": []}]}),
            "file_search",
        ),
        (
            json!({"tools": [{"type": "mcp", "server_label": "x"}]}),
            "mcp",
        ),
        (
            json!({"include": ["reasoning.encrypted_content"]}),
            "include",
        ),
        (json!({"made_up_field": 1}), "made_up_field"),
        (
            json!({"input": [{"type": "item_reference", "id": "x"}]}),
            "item_reference",
        ),
        (
            json!({"input": [{"type": "input_image", "file_id": "f"}]}),
            "input_image",
        ),
    ];
    for (extra, name) in cases {
        let mut body = json!({"model": "m", "input": "x"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        match chat(body) {
            Err(ResponsesError::Unsupported(m)) => assert!(m.contains(name), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // Explicit defaults are fine.
    chat(
        json!({"model": "m", "input": "x", "store": false, "background": false,
                "previous_response_id": null, "include": [], "truncation": "disabled"}),
    )
    .unwrap();
}

#[test]
fn malformed_input_is_invalid() {
    for body in [
        json!({"model": "m"}),
        json!({"model": "m", "input": []}),
        json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]}),
        json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
        json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}),
    ] {
        assert!(
            matches!(chat(body.clone()), Err(ResponsesError::Invalid(_))),
            "{body}"
        );
    }
}
