//! Claude Code (captured turns, budgeted thinking and its history) and the
//! Vercel AI SDK's structured output through every kind of route.

use super::{answer, blocks, fixture, ignored, world};
use crate::common::anthropic::FAKE_KEY;
use serde_json::{Value, json};

#[tokio::test]
async fn claude_code_captured_turns_through_every_kind() {
    let w = world().await;
    // The main turn: 24 tools, a system turn after the prompt, adaptive
    // thinking with effort high, context management, cache_control.
    for route in ["mocked", "oai", "gem"] {
        let (got, _) = answer(&w.gw, &fixture("claude-main", route), true).await;
        assert_eq!(
            ignored(&got),
            "cache_control, context_management",
            "{route}"
        );
    }
    let (got, m) = answer(&w.gw, &fixture("claude-main", "claude"), false).await;
    assert_eq!(got, None, "nothing is ignored on a native target");
    assert_eq!(blocks(&m, "thinking").len(), 1, "{m}");
    let sent = &w.claude.requests()[0];
    let mut expected = fixture("claude-main", "x").body;
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(
        sent.body, expected,
        "the client's body, only `model` replaced"
    );
    let beta = sent.headers["anthropic-beta"].to_str().unwrap();
    assert!(beta.contains("mid-conversation-system") && beta.contains("context-management"));
    assert_eq!(sent.headers["x-api-key"], FAKE_KEY);

    let chat = &w.oai.requests()[0].body;
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(chat["max_completion_tokens"], 64000);
    for k in [
        "thinking",
        "context_management",
        "output_config",
        "metadata",
        "system",
    ] {
        assert!(chat.get(k).is_none(), "{k} sent: {chat}");
    }
    assert!(!chat.to_string().contains("cache_control"));
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "system"],
        "the system turn in place"
    );
    assert_eq!(chat["tools"].as_array().unwrap().len(), 24);
    let native = &w.gemini.requests()[0].body;
    assert_eq!(
        native["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 16384, "includeThoughts": true})
    );
    assert_eq!(
        native["contents"].as_array().unwrap().len(),
        1,
        "system turns go to systemInstruction"
    );

    // The tool turn: tool_use, tool_result, the answer from the result.
    for route in ["mocked", "oai", "gem", "claude"] {
        let (got, m) = answer(&w.gw, &fixture("claude-tool", route), route != "claude").await;
        let want = if route == "claude" {
            ""
        } else {
            "cache_control, context_management"
        };
        assert_eq!(ignored(&got), want, "{route}");
        assert_eq!(m["stop_reason"], "end_turn", "{route}: {m}");
    }
    let roles: Vec<String> = w.oai.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["system", "user", "system", "assistant", "tool"]);

    // The title request: no thinking, effort high, a JSON schema format;
    // nothing to leave out.
    for route in ["mocked", "oai", "gem", "claude"] {
        let (got, m) = answer(&w.gw, &fixture("claude-title", route), route != "claude").await;
        assert_eq!(got, None, "{route}");
        assert!(
            blocks(&m, "thinking").is_empty(),
            "thinking was disabled: {m}"
        );
        let text = blocks(&m, "text")[0]["text"].as_str().unwrap().to_string();
        let title: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{route}: {text}"));
        assert!(title.is_object(), "{route}: {title}");
    }
    let chat = &w.oai.requests()[2].body;
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(chat["response_format"]["type"], "json_schema");
    assert_eq!(
        w.gemini.requests()[2].body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 16384}),
        "effort without thinking shown"
    );
    w.gw.stop().await;
}

#[tokio::test]
async fn claude_code_budgeted_thinking_and_its_history_through_every_kind() {
    let w = world().await;
    let first = "claude-budget-main";
    for route in ["mocked", "oai", "gem"] {
        let (got, m) = answer(&w.gw, &fixture(first, route), true).await;
        assert_eq!(
            ignored(&got),
            "cache_control, context_management",
            "{route}"
        );
        assert_eq!(blocks(&m, "thinking").len(), 1, "{route}: {m}");
    }
    let (got, m) = answer(&w.gw, &fixture(first, "claude"), false).await;
    assert_eq!(got, None);
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(blocks(&m, "thinking")[0]["signature"], "fake-signature");
    assert_eq!(
        w.oai.requests()[0].body["reasoning_effort"],
        "high",
        "31999 tokens"
    );
    assert_eq!(
        w.gemini.requests()[0].body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 24576, "includeThoughts": true})
    );
    let turn = "claude-thinking-tool";
    for route in ["mocked", "oai", "gem"] {
        let (got, m) = answer(&w.gw, &fixture(turn, route), true).await;
        assert_eq!(
            ignored(&got),
            "cache_control, messages:thinking, context_management",
            "{route}"
        );
        assert_eq!(m["stop_reason"], "end_turn", "{route}: {m}");
    }
    let chat = &w.oai.requests()[1].body;
    let last = &chat["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "system");
    assert!(last["content"].as_str().unwrap().contains("task list"));
    assert!(!chat.to_string().contains("signature"));
    let instruction = w.gemini.requests()[1].body["systemInstruction"].to_string();
    assert!(instruction.contains("task list"), "merged: {instruction}");
    let (got, m) = answer(&w.gw, &fixture(turn, "claude"), false).await;
    assert_eq!(got, None);
    assert!(
        blocks(&m, "text")[0]["text"]
            .as_str()
            .unwrap()
            .contains("18C")
    );
    w.gw.stop().await;
}

#[tokio::test]
async fn structured_output_requests_get_json_text_everywhere() {
    let w = world().await;
    let name = "vercel-generate-object";
    for route in ["mocked", "oai", "gem", "claude"] {
        let translated = route != "claude";
        let (got, m) = answer(&w.gw, &fixture(name, route), translated).await;
        assert_eq!(got, None, "{route}: nothing ignored");
        let text = blocks(&m, "text")[0]["text"].as_str().unwrap().to_string();
        let parsed: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{route}: not JSON: {text}"));
        assert!(parsed["recipe"].is_object(), "{route}: {parsed}");
    }
    let schema = fixture(name, "x").body["output_config"]["format"]["schema"].clone();
    assert_eq!(
        w.oai.requests()[0].body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
    );
    let gem = &w.gemini.requests()[0].body;
    assert_eq!(
        gem["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert!(gem["generationConfig"]["responseSchema"].is_object());
    assert_eq!(
        w.claude.requests()[0].body["output_config"]["format"]["schema"],
        schema
    );
    w.gw.stop().await;
}
