//! Unit tests of the Messages -> chat request translation.

use super::*;

fn tx(v: Value, stream: bool, policy: Unsupported) -> Result<Translated, MessagesError> {
    let Value::Object(m) = v else { panic!() };
    to_chat(&m, stream, policy)
}

fn chat(v: Value, stream: bool) -> Result<Value, MessagesError> {
    tx(v, stream, Unsupported::Reject).map(|c| Value::Object(c.chat.body.into_map()))
}

fn names(t: &Translated) -> Vec<String> {
    t.ignored.fields().iter().map(|f| f.name.clone()).collect()
}

#[test]
fn system_messages_tools_and_sampling_translate() {
    let t = tx(
        json!({"model": "r", "messages": [{"role": "user", "content": "x"}],
               "tools": [{"name": "get", "input_schema": {"type": "object"}}],
               "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}),
        false,
        Unsupported::Reject,
    )
    .unwrap();
    assert!(t.chat.ext.serial_tool_calls);
    assert_eq!(t.serial_from, Some("tool_choice.disable_parallel_tool_use"));
    let out = chat(
        json!({
            "model": "route", "max_tokens": 100, "stop_sequences": ["END"],
            "temperature": 0.5, "top_p": 0.9, "metadata": {"user_id": "u1"},
            "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "t1", "name": "get", "input": {"a": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                    {"type": "text", "text": "thanks"}]}
            ]
        }),
        true,
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "route", "max_completion_tokens": 100, "stop": ["END"], "temperature": 0.5,
            "top_p": 0.9, "user": "u1",
            "stream": true, "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "get"}},
            "messages": [
                {"role": "system", "content": "a\n\nb"},
                {"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": "ok", "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "42"},
                {"role": "user", "content": [{"type": "text", "text": "thanks"}]}
            ]
        })
    );
}

#[test]
fn system_turns_stay_in_place_and_cache_control_is_named() {
    let t = tx(
        json!({"model": "r", "max_tokens": 5,
               "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
               "messages": [
                   {"role": "user", "content": "one"},
                   {"role": "system", "content": [{"type": "text", "text": "mid"}]},
                   {"role": "assistant", "content": "two"},
                   {"role": "user", "content": "three"},
                   {"role": "system", "content": "late"}]}),
        false,
        Unsupported::Reject,
    )
    .unwrap();
    let roles: Vec<(&str, &str)> = t.chat.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("system", "S"),
            ("user", "one"),
            ("system", "mid"),
            ("assistant", "two"),
            ("user", "three"),
            ("system", "late")
        ]
    );
    assert_eq!(names(&t), ["cache_control"]);
}

#[test]
fn reasoning_controls_and_top_k_go_to_the_extension() {
    let base = json!({"model": "r", "max_tokens": 64000,
                      "messages": [{"role": "user", "content": "x"}]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        tx(b, false, Unsupported::Reject).unwrap()
    };
    let t = with(
        "thinking",
        json!({"type": "enabled", "budget_tokens": 31999}),
    );
    assert_eq!(
        t.chat.ext.reasoning,
        Some(Reasoning {
            budget_tokens: Some(31999),
            show: true,
            ..Reasoning::default()
        })
    );
    assert_eq!(t.reasoning_from, ["thinking"]);
    assert!(!t.chat.body.contains_key("reasoning_effort"));
    assert!(!t.chat.body.contains_key("thinking"));
    let mut b = base.clone();
    b["thinking"] = json!({"type": "adaptive"});
    b["output_config"] = json!({"effort": "high"});
    let t = tx(b, false, Unsupported::Reject).unwrap();
    let r = t.chat.ext.reasoning.clone().unwrap();
    assert!(r.adaptive && r.show);
    assert_eq!(r.effort.as_deref(), Some("high"));
    assert_eq!(t.reasoning_from, ["output_config.effort", "thinking"]);
    // Effort alone: reasoning, but no thinking shown.
    let t = with("output_config", json!({"effort": "low"}));
    assert!(!t.chat.ext.reasoning.unwrap().show);
    assert!(
        with("thinking", json!({"type": "disabled"}))
            .chat
            .ext
            .reasoning
            .is_none()
    );
    let t = with("top_k", json!(5));
    assert_eq!(t.chat.ext.top_k, Some(5));
    assert_eq!(t.top_k_from, Some("top_k"));
    assert!(!t.chat.body.contains_key("top_k"));
    // A target without a reasoning control or top_k names them.
    let mut b = base.clone();
    b["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    b["top_k"] = json!(3);
    let t = tx(b, false, Unsupported::Reject).unwrap();
    let none = crate::api::chat::ExtSupport::default();
    assert_eq!(
        t.ignored_on(none).header_value().unwrap(),
        "thinking, top_k"
    );
    let all = crate::api::chat::ExtSupport {
        reasoning: true,
        top_k: true,
        serial_tool_calls: true,
    };
    assert_eq!(t.ignored_on(all).header_value(), None);
}

#[test]
fn output_format_becomes_a_json_schema_response_format() {
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}},
                        "required": ["title"], "additionalProperties": false});
    let out = chat(
        json!({"model": "r", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
               "output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        false,
    )
    .unwrap();
    assert_eq!(
        out["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
    );
}

#[test]
fn metadata_without_effect_is_accepted_and_named() {
    let t = tx(
        json!({"model": "r", "max_tokens": 5, "service_tier": "auto",
               "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
               "messages": [{"role": "user", "content": "x"},
                            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"},
                                                              {"type": "text", "text": "y"}]},
                            {"role": "user", "content": "z"}]}),
        false,
        Unsupported::Reject,
    )
    .unwrap();
    assert_eq!(
        names(&t),
        ["messages:thinking", "context_management", "service_tier"]
    );
    assert!(!t.chat.body.contains_key("context_management"));
    assert!(!t.chat.body.contains_key("service_tier"));
}

#[test]
fn the_routes_choice_decides_server_tools_other_edits_and_unknown_fields() {
    let body = json!({"model": "r", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"},
                  {"name": "get", "input_schema": {"type": "object"}}],
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "mcp_servers": [{"type": "url", "url": "https://x"}]});
    let e = tx(body.clone(), false, Unsupported::Reject).unwrap_err();
    assert!(matches!(e, MessagesError::Unsupported(_)), "{e:?}");
    let t = tx(body, false, Unsupported::Drop).unwrap();
    assert_eq!(
        names(&t),
        [
            "context_management.edits:clear_tool_uses_20250919",
            "mcp_servers",
            "tools:web_search_20250305"
        ]
    );
    let tools = t.chat.body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["function"]["name"], "get");
    // Only server tools: none left, and no choice among none.
    let t = tx(
        json!({"model": "r", "messages": [{"role": "user", "content": "x"}],
               "tools": [{"type": "web_search_20250305", "name": "web_search"}],
               "tool_choice": {"type": "any"}}),
        false,
        Unsupported::Drop,
    )
    .unwrap();
    assert!(!t.chat.body.contains_key("tools"));
    assert!(!t.chat.body.contains_key("tool_choice"));
}

#[test]
fn content_chat_cannot_carry_is_refused_whatever_the_choice() {
    for policy in [Unsupported::Reject, Unsupported::Drop] {
        let doc = tx(
            json!({"model": "r", "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "x"}}]}]}),
            false,
            policy,
        );
        assert!(matches!(doc, Err(MessagesError::Unsupported(_))));
    }
    let bad_role = chat(
        json!({"model": "r", "messages": [{"role": "tool", "content": "x"}]}),
        false,
    );
    assert!(matches!(bad_role, Err(MessagesError::Invalid(_))));
    let only_system = chat(
        json!({"model": "r", "messages": [{"role": "system", "content": "x"}]}),
        false,
    );
    assert!(matches!(only_system, Err(MessagesError::Invalid(_))));
    let bad_thinking = chat(
        json!({"model": "r", "messages": [{"role": "user", "content": "x"}],
               "thinking": {"type": "enabled"}}),
        false,
    );
    assert!(matches!(bad_thinking, Err(MessagesError::Invalid(_))));
}

#[test]
fn tool_choices_map() {
    for (given, want) in [
        ("auto", json!("auto")),
        ("any", json!("required")),
        ("none", json!("none")),
    ] {
        let out = chat(
            json!({"model": "r", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"name": "t", "input_schema": {"type": "object"}}],
                   "tool_choice": {"type": given}}),
            false,
        )
        .unwrap();
        assert_eq!(out["tool_choice"], want);
        assert!(out.get("stream").is_none());
    }
}
