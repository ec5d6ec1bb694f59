//! Unit tests of the Responses -> chat request translation.

use serde_json::{Value, json};

use super::*;

fn chat(body: Value) -> Result<Map<String, Value>, ResponsesError> {
    to_chat(body.as_object().unwrap(), Unsupported::Reject).map(|c| c.chat.body.into_map())
}

fn translated(body: Value, policy: Unsupported) -> Result<Translated, ResponsesError> {
    to_chat(body.as_object().unwrap(), policy)
}

fn names(t: &Translated) -> Vec<String> {
    t.ignored.fields().iter().map(|f| f.name.clone()).collect()
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
    assert_eq!(c["max_completion_tokens"], 50);
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
            json!({"include": ["message.output_text.logprobs"]}),
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

#[test]
fn metadata_is_accepted_named_and_not_sent() {
    let t = translated(
        json!({"model": "m", "input": "x", "store": false, "stream": true,
               "client_metadata": {"x-codex-installation-id": "i"}, "metadata": {"a": "b"},
               "prompt_cache_key": "k", "service_tier": "auto", "safety_identifier": "s",
               "include": ["reasoning.encrypted_content"], "text": {"verbosity": "low"},
               "reasoning": {"effort": "medium", "summary": "auto"}}),
        Unsupported::Reject,
    )
    .unwrap();
    assert_eq!(
        names(&t),
        [
            "client_metadata",
            "metadata",
            "prompt_cache_key",
            "safety_identifier",
            "service_tier",
            "include:reasoning.encrypted_content",
            "text.verbosity"
        ]
    );
    for k in [
        "client_metadata",
        "metadata",
        "prompt_cache_key",
        "service_tier",
        "safety_identifier",
        "include",
        "store",
        "reasoning",
        "reasoning_effort",
        "verbosity",
    ] {
        assert!(!t.chat.body.contains_key(k), "{k} sent");
    }
    let r = t.chat.ext.reasoning.clone().unwrap();
    assert_eq!(r.effort.as_deref(), Some("medium"));
    assert!(r.show);
    assert_eq!(t.reasoning_from, ["reasoning.effort"]);
    assert!(
        t.ignored_on(Default::default())
            .header_value()
            .unwrap()
            .ends_with("reasoning.effort")
    );
    let none = translated(
        json!({"model": "m", "input": "x", "reasoning": {"effort": "none"}}),
        Unsupported::Reject,
    )
    .unwrap();
    assert!(none.chat.ext.reasoning.is_none());
}

#[test]
fn the_routes_choice_drops_builtin_tools_and_unknown_fields() {
    let body = json!({"model": "m", "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "d"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"role": "user", "content": "x"}],
        "tools": [{"type": "web_search", "external_web_access": true},
                  {"type": "namespace", "name": "ns", "tools": [
                      {"type": "function", "name": "lookup", "parameters": {"type": "object"}}]},
                  {"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": false}],
        "tool_choice": "auto", "max_tool_calls": 3, "parallel_tool_calls": false});
    assert!(matches!(
        translated(body.clone(), Unsupported::Reject),
        Err(ResponsesError::Unsupported(_))
    ));
    let t = translated(body, Unsupported::Drop).unwrap();
    assert_eq!(
        names(&t),
        ["max_tool_calls", "input:reasoning", "tools:web_search"]
    );
    // The namespace's tools join the rest; the function keeps its strict.
    let tools = t.chat.body["tools"].as_array().unwrap();
    let tool_names: Vec<&str> = tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tool_names, ["lookup", "shell"]);
    assert_eq!(tools[1]["function"]["strict"], false);
    assert!(t.chat.ext.serial_tool_calls, "parallel_tool_calls: false");
    assert!(!t.chat.body.contains_key("parallel_tool_calls"));
    assert_eq!(
        t.ignored_on(Default::default())
            .fields()
            .last()
            .unwrap()
            .name,
        "parallel_tool_calls"
    );
    assert_eq!(
        t.chat.body["messages"],
        json!([{"role": "system", "content": "d"}, {"role": "user", "content": "x"}])
    );
    // A choice among dropped tools goes with them.
    let t = translated(
        json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}],
               "tool_choice": {"type": "web_search"}}),
        Unsupported::Drop,
    )
    .unwrap();
    assert!(!t.chat.body.contains_key("tools"));
    assert!(!t.chat.body.contains_key("tool_choice"));
    assert_eq!(names(&t), ["tools:web_search", "tool_choice:web_search"]);
}

#[test]
fn state_is_refused_even_when_the_route_drops() {
    for extra in [
        json!({"previous_response_id": "resp_1"}),
        json!({"store": true}),
        json!({"background": true}),
        json!({"include": ["message.output_text.logprobs"]}),
        json!({"input": [{"type": "item_reference", "id": "x"}]}),
    ] {
        let mut body = json!({"model": "m", "input": "x"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        assert!(
            matches!(
                translated(body, Unsupported::Drop),
                Err(ResponsesError::Unsupported(_))
            ),
            "{extra}"
        );
    }
}

#[test]
fn codex_tools_in_additional_items_and_custom_calls_translate() {
    let t = translated(
        json!({"model": "m", "tool_choice": "auto", "parallel_tool_calls": false,
               "reasoning": {"effort": "low", "context": "all_turns"},
               "input": [
            {"type": "additional_tools", "role": "developer", "tools": [
                {"type": "namespace", "name": "functions", "description": "", "tools": [
                    {"type": "custom", "name": "exec", "description": "Run JS.",
                     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
                    {"type": "function", "name": "wait", "parameters": {"type": "object"}}]}]},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
            {"type": "custom_tool_call", "call_id": "c1", "name": "exec", "input": "text(1)"},
            {"type": "custom_tool_call_output", "call_id": "c1",
             "output": [{"type": "input_text", "text": "1"}]}]}),
        Unsupported::Reject,
    )
    .unwrap();
    assert_eq!(names(&t), ["reasoning.context"]);
    let tools = t.chat.body["tools"].as_array().unwrap();
    assert_eq!(tools[0]["function"]["name"], "exec");
    assert_eq!(
        tools[0]["function"]["parameters"]["required"],
        json!(["input"])
    );
    assert_eq!(tools[1]["function"]["name"], "wait");
    assert!(t.chat.ext.serial_tool_calls);
    assert_eq!(
        t.chat.body["messages"],
        json!([
            {"role": "system", "content": "rules"},
            {"role": "user", "content": [{"type": "text", "text": "go"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "exec", "arguments": "{\"input\":\"text(1)\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"}
        ])
    );
}
