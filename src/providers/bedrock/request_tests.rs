//! OpenAI chat bodies translated to Converse: plain chat, system and
//! inference config, tools and tool choice, `top_k` placement, and what
//! Converse cannot express refused with a clear error.

use super::*;

fn translate(body: Value) -> Result<Value, TranslateError> {
    let settings = BedrockChatSettings::default();
    chat_request(
        body.as_object().unwrap(),
        "anthropic.claude-3-haiku-20240307-v1:0",
        &settings,
    )
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
           "strict": true}})
}

#[test]
fn plain_chat_with_system_and_inference_config() {
    let out = translate(json!({
        "model": "claude", "stream": true, "stream_options": {"include_usage": true}, "user": "u1", "seed": 7,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}],
        "max_tokens": 100, "max_completion_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": "END", "n": 1,
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
            "system": [{"text": "You are terse."}],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        })
    );
    let settings = BedrockChatSettings {
        default_max_tokens: Some(4096),
    };
    let body = json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]});
    let out = chat_request(body.as_object().unwrap(), "m", &settings).unwrap();
    assert_eq!(
        out["inferenceConfig"],
        json!({"maxTokens": 4096, "stopSequences": ["a", "b"]})
    );
}

#[test]
fn tools_and_tool_choice() {
    let base =
        json!({"messages": [{"role": "user", "content": "weather?"}], "tools": [weather_tool()]});
    let spec = json!({"toolSpec": {"name": "get_weather", "description": "Weather by city",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}});
    let out = translate(base.clone()).unwrap();
    assert_eq!(out["toolConfig"], json!({"tools": [spec]}));
    for (choice, expected) in [
        (json!("auto"), json!({"auto": {}})),
        (json!("required"), json!({"any": {}})),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            json!({"tool": {"name": "get_weather"}}),
        ),
    ] {
        let mut body = base.clone();
        body["tool_choice"] = choice;
        assert_eq!(
            translate(body).unwrap()["toolConfig"]["toolChoice"],
            expected
        );
    }
    let mut none = base.clone();
    none["tool_choice"] = json!("none");
    assert!(translate(none).unwrap().get("toolConfig").is_none());

    let mut unknown = base.clone();
    unknown["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
    assert!(matches!(
        translate(unknown),
        Err(TranslateError::InvalidRequest(_))
    ));
    let required_alone =
        json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"});
    assert!(matches!(
        translate(required_alone),
        Err(TranslateError::InvalidRequest(_))
    ));
    let mut other_kind = base.clone();
    other_kind["tools"] = json!([{"type": "web_search"}]);
    assert!(matches!(
        translate(other_kind),
        Err(TranslateError::Unsupported { .. })
    ));
}

#[test]
fn top_k_goes_where_the_model_takes_it() {
    let body = json!({"messages": [{"role": "user", "content": "x"}], "top_k": 5});
    let out = translate(body.clone()).unwrap();
    assert_eq!(out["additionalModelRequestFields"], json!({"top_k": 5}));
    let llama = chat_request(
        body.as_object().unwrap(),
        "meta.llama3-70b-instruct-v1:0",
        &BedrockChatSettings::default(),
    );
    assert!(matches!(llama, Err(TranslateError::Unsupported { .. })));
}

#[test]
fn tool_choice_none_with_tool_history_is_unsupported() {
    let body = json!({
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
        "tools": [weather_tool()], "tool_choice": "none"});
    let err = translate(body).unwrap_err();
    assert!(err.to_string().contains("tool_choice \"none\""), "{err}");
}

#[test]
fn refuses_what_converse_cannot_express() {
    for (field, value, named) in [
        ("n", json!(2), "n > 1"),
        (
            "response_format",
            json!({"type": "json_object"}),
            "response_format \"json_object\"",
        ),
        ("presence_penalty", json!(0.5), "presence_penalty"),
        ("logprobs", json!(true), "logprobs"),
        ("logit_bias", json!({"50256": -100}), "logit_bias"),
        (
            "parallel_tool_calls",
            json!(false),
            "parallel_tool_calls: false",
        ),
        ("reasoning_effort", json!("high"), "reasoning_effort"),
    ] {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
        body[field] = value;
        match translate(body) {
            Err(TranslateError::Unsupported {
                kind: "bedrock",
                feature,
            }) => assert_eq!(feature, named),
            other => panic!("{field}: {other:?}"),
        }
    }
    let fine = json!({"messages": [{"role": "user", "content": "x"}], "frequency_penalty": 0,
        "response_format": {"type": "text"}, "parallel_tool_calls": true, "logprobs": false, "metadata": {"a": "b"}});
    assert!(translate(fine).is_ok());
}

#[test]
fn rejects_invalid_values() {
    for body in [
        json!({"messages": []}),
        json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
        json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
        json!({"messages": [{"role": "user", "content": "x"}], "stop": [1]}),
    ] {
        assert!(matches!(
            translate(body),
            Err(TranslateError::InvalidRequest(_))
        ));
    }
    let body = json!({"messages": [{"role": "user", "content": "x"}]});
    let settings = BedrockChatSettings::default();
    assert!(chat_request(body.as_object().unwrap(), "", &settings).is_err());
}
