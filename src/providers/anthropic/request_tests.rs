//! OpenAI chat bodies translated to the Messages API: default
//! `max_tokens`, sampling, stop and stream, response formats, reasoning as
//! thinking, and what Anthropic cannot express refused.

use super::*;

fn req(body: Value) -> Result<Value, TranslateError> {
    req_with(body, &AnthropicChatSettings::default())
}

fn req_with(body: Value, s: &AnthropicChatSettings) -> Result<Value, TranslateError> {
    let Value::Object(body) = body else {
        panic!("test body must be an object")
    };
    chat_request(&body, "claude-sonnet-4-5", s)
}

fn unsupported_feature(r: Result<Value, TranslateError>) -> String {
    match r {
        Err(TranslateError::Unsupported { kind, feature }) => {
            assert_eq!(kind, "anthropic");
            feature
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn plain_chat_gets_the_default_max_tokens() {
    let out = req(json!({"model": "client-name", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]}))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5", "max_tokens": 4096, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hello"}],
        })
    );
    let s = AnthropicChatSettings {
        default_max_tokens: 77,
        ..Default::default()
    };
    let out = req_with(json!({"messages": [{"role": "user", "content": "x"}]}), &s).unwrap();
    assert_eq!(out["max_tokens"], 77);
}

#[test]
fn sampling_stop_stream_and_user() {
    let out = req(json!({
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 100, "max_completion_tokens": 200, "temperature": 0.5, "top_p": 0.9,
        "stop": "END", "stream": true, "stream_options": {"include_usage": true},
        "user": "user-123", "seed": 7, "store": false, "metadata": {"a": "b"}, "n": 1,
        "logprobs": false, "presence_penalty": 0, "response_format": {"type": "text"},
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5", "max_tokens": 200,
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"], "stream": true,
            "metadata": {"user_id": "user-123"},
        })
    );
    let out = req(json!({"messages": [{"role": "user", "content": "x"}],
        "max_tokens": 5, "stop": ["a", "b"], "top_k": 40}))
    .unwrap();
    assert_eq!(out["max_tokens"], 5);
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert_eq!(out["top_k"], 40);
}

#[test]
fn response_format() {
    let body =
        |rf: Value| json!({"messages": [{"role": "user", "content": "x"}], "response_format": rf});
    let schema =
        json!({"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}});
    let r = req(body(json!({"type": "json_object"})));
    assert_eq!(unsupported_feature(r), "response_format json_object");
    let r = req(body(schema.clone()));
    assert_eq!(unsupported_feature(r), "response_format json_schema");
    let s = AnthropicChatSettings {
        structured_outputs: true,
        ..Default::default()
    };
    assert_eq!(
        req_with(body(schema), &s).unwrap()["output_config"],
        json!({"format": {"type": "json_schema", "schema": {"type": "object"}}})
    );
}

#[test]
fn refuses_what_anthropic_cannot_express() {
    for (key, value, feature) in [
        ("n", json!(2), "n > 1"),
        ("logprobs", json!(true), "logprobs"),
        ("top_logprobs", json!(3), "top_logprobs"),
        ("logit_bias", json!({"50256": -100}), "logit_bias"),
        ("presence_penalty", json!(0.5), "presence_penalty"),
        ("frequency_penalty", json!(-1), "frequency_penalty"),
        (
            "modalities",
            json!(["text", "audio"]),
            "modalities other than text",
        ),
        ("audio", json!({"voice": "alloy"}), "audio"),
        ("functions", json!([{"name": "f"}]), "functions"),
        ("temperature", json!(1.5), "temperature above 1"),
    ] {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
        body[key] = value;
        assert_eq!(unsupported_feature(req(body)), feature, "{key}");
    }
}

#[test]
fn reasoning_becomes_thinking_and_drops_top_k() {
    let out = req(json!({"messages": [{"role": "user", "content": "x"}],
                         "max_tokens": 4000, "reasoning_effort": "low"}))
    .unwrap();
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    // A chat client's own settings that cannot go are refused.
    for (k, v) in [("top_k", json!(5)), ("temperature", json!(0.2))] {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}],
                              "max_tokens": 4000, "reasoning_effort": "low"});
        body[k] = v;
        assert!(!unsupported_feature(req(body)).is_empty(), "{k}");
    }
    let ext = ChatExt {
        reasoning: Some(crate::api::chat::Reasoning {
            effort: Some("medium".into()),
            ..Default::default()
        }),
        top_k: None,
        serial_tool_calls: false,
    };
    let Value::Object(body) = json!({"messages": [{"role": "user", "content": "x"}]}) else {
        panic!()
    };
    let out = chat_request_ext(
        &body,
        &ext,
        "claude-opus-4-6",
        &AnthropicChatSettings::default(),
    )
    .unwrap();
    assert_eq!(out["thinking"], json!({"type": "adaptive"}));
    assert_eq!(out["output_config"], json!({"effort": "medium"}));
    let top_k = ChatExt {
        reasoning: None,
        serial_tool_calls: false,
        top_k: Some(7),
    };
    let out = chat_request_ext(&body, &top_k, "claude-opus-4-6", &Default::default()).unwrap();
    assert_eq!(out["top_k"], 7);
    assert!(out.get("thinking").is_none());
}

#[test]
fn invalid_values() {
    for (key, value) in [
        ("max_tokens", json!(0)),
        ("max_completion_tokens", json!(-3)),
        ("temperature", json!("hot")),
        ("temperature", json!(3)),
        ("stop", json!([1])),
        ("n", json!(0)),
        ("stream", json!("yes")),
        ("user", json!(5)),
    ] {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
        body[key] = value;
        let r = req(body);
        assert!(
            matches!(r, Err(TranslateError::InvalidRequest(_))),
            "{key}: {r:?}"
        );
    }
    let r = req(json!({"model": "m"}));
    assert!(matches!(r, Err(TranslateError::InvalidRequest(_))));
}
