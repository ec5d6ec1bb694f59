//! Unit tests of [`super::chat_request`], built from the request examples of
//! the Gemini API reference (text, system instruction, function calling,
//! JSON mode) and of the OpenAI chat reference.

use super::*;
use serde_json::json;

fn translate(body: Value) -> Result<Value, TranslateError> {
    chat_request(
        body.as_object().unwrap(),
        "gemini-2.5-flash",
        &GeminiChatSettings::default(),
    )
}

fn unsupported_feature(body: Value) -> String {
    match translate(body) {
        Err(TranslateError::Unsupported { kind, feature }) => {
            assert_eq!(kind, "gemini");
            feature
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn plain_chat_with_system_prompt_and_sampling() {
    let out = translate(json!({
        "model": "route-name", "stream": true, "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "You are a cat. Your name is Neko."},
            {"role": "user", "content": "Hello there"}
        ],
        "max_tokens": 100, "max_completion_tokens": 50, "temperature": 0.7, "top_p": 0.9,
        "stop": "END", "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5,
        "user": "u-1", "metadata": {"a": "b"}, "parallel_tool_calls": true, "logit_bias": null
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
            "systemInstruction": {"parts": [{"text": "You are a cat. Your name is Neko."}]},
            "generationConfig": {
                "maxOutputTokens": 50, "temperature": 0.7, "topP": 0.9, "stopSequences": ["END"],
                "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5
            }
        })
    );
}

#[test]
fn settings_default_max_tokens_and_candidates() {
    let settings = GeminiChatSettings {
        default_max_tokens: Some(1024),
        ..GeminiChatSettings::default()
    };
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "n": 2, "stop": ["a", "b"]});
    let out = chat_request(body.as_object().unwrap(), "gemini-2.5-pro", &settings).unwrap();
    assert_eq!(
        out["generationConfig"],
        json!({"candidateCount": 2, "stopSequences": ["a", "b"], "maxOutputTokens": 1024})
    );
}

#[test]
fn tools_and_every_tool_choice() {
    let body = |choice: Value| {
        json!({
            "messages": [{"role": "user", "content": "What's the weather like in Boston today?"}],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_current_weather", "description": "Get the current weather in a given location",
                    "strict": true,
                    "parameters": {"type": "object", "additionalProperties": false,
                        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                        "required": ["location"]}}},
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
            ],
            "tool_choice": choice
        })
    };
    let out = translate(body(json!("auto"))).unwrap();
    assert_eq!(
        out["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_current_weather", "description": "Get the current weather in a given location",
             "parameters": {"type": "OBJECT",
                "properties": {"location": {"type": "STRING"}, "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}},
                "required": ["location"]}},
            {"name": "now"}
        ]}])
    );
    assert_eq!(
        out["toolConfig"],
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    let mode = |choice: Value| {
        translate(body(choice)).unwrap()["toolConfig"]["functionCallingConfig"].clone()
    };
    assert_eq!(mode(json!("none")), json!({"mode": "NONE"}));
    assert_eq!(mode(json!("required")), json!({"mode": "ANY"}));
    assert_eq!(
        mode(json!({"type": "function", "function": {"name": "now"}})),
        json!({"mode": "ANY", "allowedFunctionNames": ["now"]})
    );
    assert_eq!(
        mode(
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
            "tools": [{"type": "function", "function": {"name": "now"}}]}})
        ),
        json!({"mode": "ANY", "allowedFunctionNames": ["now"]})
    );
    assert!(
        unsupported_feature(body(
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}})
        ))
        .contains("allowed_tools")
    );
}

#[test]
fn native_json_schema_passes_schemas_through() {
    let settings = GeminiChatSettings {
        native_json_schema: true,
        ..GeminiChatSettings::default()
    };
    let params = json!({"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": false});
    let body = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "search", "parameters": params}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": params}}
    });
    let out = chat_request(body.as_object().unwrap(), "gemini-2.5-flash", &settings).unwrap();
    assert_eq!(
        out["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"],
        params
    );
    assert_eq!(out["generationConfig"]["responseJsonSchema"], params);
    assert_eq!(
        out["generationConfig"]["responseMimeType"],
        "application/json"
    );
}

#[test]
fn response_formats() {
    let with = |rf: Value| {
        translate(json!({"messages": [{"role": "user", "content": "List cookies"}], "response_format": rf}))
            .unwrap()
            .get("generationConfig")
            .cloned()
    };
    assert_eq!(with(json!({"type": "text"})), None);
    assert_eq!(
        with(json!({"type": "json_object"})),
        Some(json!({"responseMimeType": "application/json"}))
    );
    assert_eq!(
        with(
            json!({"type": "json_schema", "json_schema": {"name": "recipes", "schema":
            {"type": "array", "items": {"type": "object", "properties": {"recipeName": {"type": "string"}}}}}})
        ),
        Some(
            json!({"responseMimeType": "application/json", "responseSchema":
            {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"recipeName": {"type": "STRING"}}}}})
        )
    );
}

#[test]
fn placeholder_signature_only_for_newer_models() {
    let body = json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    ]});
    let body = body.as_object().unwrap();
    let settings = GeminiChatSettings::default();
    let signature = |model: &str| {
        chat_request(body, model, &settings).unwrap()["contents"][1]["parts"][0]
            .get("thoughtSignature")
            .cloned()
    };
    assert_eq!(
        signature("gemini-3-pro-preview"),
        Some(json!("skip_thought_signature_validator"))
    );
    assert_eq!(signature("models/gemini-2.5-flash"), None);
    let off = GeminiChatSettings {
        placeholder_thought_signature: false,
        ..settings.clone()
    };
    let out = chat_request(body, "gemini-3-pro-preview", &off).unwrap();
    assert!(
        out["contents"][1]["parts"][0]
            .get("thoughtSignature")
            .is_none()
    );
}

#[test]
fn refuses_what_would_change_the_answer() {
    let base = |k: &str, v: Value| {
        let mut b = json!({"messages": [{"role": "user", "content": "hi"}]});
        b[k] = v;
        b
    };
    assert!(
        unsupported_feature(base("parallel_tool_calls", json!(false)))
            .contains("parallel_tool_calls")
    );
    assert!(unsupported_feature(base("logprobs", json!(true))).contains("logprobs"));
    assert!(unsupported_feature(base("logit_bias", json!({"50256": -100}))).contains("logit_bias"));
    let old = chat_request(
        base("reasoning_effort", json!("low")).as_object().unwrap(),
        "gemini-2.0-flash",
        &GeminiChatSettings::default(),
    );
    assert!(
        matches!(old, Err(TranslateError::Unsupported { .. })),
        "{old:?}"
    );
    assert!(
        unsupported_feature(base("modalities", json!(["text", "audio"]))).contains("modalities")
    );
    assert!(unsupported_feature(base("vendor_knob", json!(1))).contains("vendor_knob"));
    assert!(
        unsupported_feature(base(
            "tools",
            json!([{"type": "custom", "custom": {"name": "x"}}])
        ))
        .contains("custom")
    );
    assert!(matches!(
        translate(base("n", json!(0))),
        Err(TranslateError::InvalidRequest(_))
    ));
    assert!(matches!(
        translate(base("tool_choice", json!("required"))),
        Err(TranslateError::InvalidRequest(m)) if m.contains("tools")
    ));
    assert!(matches!(
        translate(json!({"messages": [{"role": "system", "content": "only a system prompt"}]})),
        Err(TranslateError::InvalidRequest(_))
    ));
}

#[test]
fn reasoning_and_top_k_go_to_the_generation_config() {
    let out = translate(json!({"messages": [{"role": "user", "content": "hi"}],
                               "reasoning_effort": "medium", "top_k": 20}))
    .unwrap();
    assert_eq!(
        out["generationConfig"],
        json!({"topK": 20, "thinkingConfig": {"thinkingBudget": 8192}})
    );
    let ext = crate::api::chat::ChatExt {
        reasoning: Some(crate::api::chat::Reasoning {
            adaptive: true,
            show: true,
            ..Default::default()
        }),
        top_k: Some(3),
        serial_tool_calls: false,
    };
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let out = chat_request_ext(
        body.as_object().unwrap(),
        &ext,
        "gemini-2.5-pro",
        &GeminiChatSettings::default(),
    )
    .unwrap();
    assert_eq!(
        out["generationConfig"],
        json!({"topK": 3, "thinkingConfig": {"thinkingBudget": -1, "includeThoughts": true}})
    );
}
