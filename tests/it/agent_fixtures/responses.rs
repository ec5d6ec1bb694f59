//! Codex (its default model's captured turns, and a gpt-5 model's) and the
//! OpenAI Agents SDK through every kind of route.

use super::{answer, fixture, ignored, items, send, world};
use serde_json::{Value, json};

#[tokio::test]
async fn codex_captured_turns_through_every_kind() {
    let w = world().await;
    // Its default model: tools in an `additional_tools` item (namespaces, a
    // free-form `exec`), reasoning context, one call per turn.
    let metadata = "client_metadata, prompt_cache_key, include:reasoning.encrypted_content";
    for route in ["mocked", "claude", "gem"] {
        let (got, r) = answer(&w.gw, &fixture("codex-main", route), true).await;
        let mut want = format!("{metadata}, reasoning.context, text.verbosity");
        if route == "gem" {
            // Gemini cannot hold the model to one tool call per turn.
            want.push_str(", parallel_tool_calls");
        }
        assert_eq!(ignored(&got), want, "{route}");
        assert_eq!(items(&r, "reasoning").len(), 1, "{route}: {r}");
    }
    let anthropic = &w.claude.requests()[0].body;
    assert_eq!(
        anthropic["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        anthropic["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let tools: Vec<&str> = anthropic["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools[0], "exec", "the namespaces' tools, flattened");
    assert!(tools.contains(&"spawn_agent") && tools.contains(&"sleep"));
    assert_eq!(
        anthropic["tools"][0]["input_schema"]["properties"]["input"]["type"], "string",
        "a free-form tool takes one string"
    );
    let gem = &w.gemini.requests()[0].body;
    assert_eq!(
        gem["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
    let (got, r) = answer(&w.gw, &fixture("codex-main", "oai"), false).await;
    assert_eq!(got, None, "passed through to a Responses upstream");
    assert_eq!(r["status"], "completed");
    let native = &w.oai.requests()[0].body;
    let mut expected = fixture("codex-main", "x").body;
    expected["model"] = json!("gpt-5-mini");
    assert_eq!(
        native, &expected,
        "the client's body, only `model` replaced"
    );

    // The tool turn: a custom_tool_call and its output.
    for route in ["mocked", "claude", "gem"] {
        let (got, r) = answer(&w.gw, &fixture("codex-tool", route), true).await;
        let mut want = format!("{metadata}, reasoning.context, text.verbosity");
        if route == "gem" {
            want.push_str(", parallel_tool_calls");
        }
        assert_eq!(ignored(&got), want, "{route}");
        let text = items(&r, "message")[0]["content"][0]["text"].to_string();
        assert!(text.contains("the tool ran"), "{route}: {r}");
    }
    let history = &w.claude.requests()[1].body["messages"];
    let call = &history[history.as_array().unwrap().len() - 2]["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "exec");
    assert_eq!(call["input"], json!({"input": "text(\"the tool ran\")"}));
    w.gw.stop().await;
}

#[tokio::test]
async fn codex_with_a_gpt5_model_through_every_kind() {
    let w = world().await;
    let metadata = "client_metadata, prompt_cache_key, include:reasoning.encrypted_content";
    for turn in ["codex-gpt5-main", "codex-gpt5-tool"] {
        for route in ["mocked", "claude", "gem"] {
            let (got, r) = answer(&w.gw, &fixture(turn, route), true).await;
            assert_eq!(
                ignored(&got),
                format!("{metadata}, tools:web_search"),
                "{turn} {route}"
            );
            assert_eq!(r["reasoning"]["summary"], "auto", "{turn} {route}");
        }
        let (got, _) = answer(&w.gw, &fixture(turn, "oai"), false).await;
        assert_eq!(got, None, "{turn}");
    }
    // A summary alone asks for reasoning at the model's default.
    let gem = &w.gemini.requests()[0].body;
    assert_eq!(
        gem["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": -1, "includeThoughts": true})
    );
    let declared = gem["tools"][0]["functionDeclarations"].to_string();
    assert!(
        declared.contains("close_agent"),
        "the namespace's tools: {declared}"
    );
    // The route that keeps the default refuses the built-in tool by name.
    let r = send(&w.gw, &fixture("codex-gpt5-main", "strict")).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unsupported_feature");
    let m = e["error"]["message"].as_str().unwrap();
    assert!(m.contains("`web_search`") && m.contains("`strict`"), "{m}");
    w.gw.stop().await;
}

#[tokio::test]
async fn the_openai_agents_sdk_request_through_every_kind() {
    let w = world().await;
    let name = "agents-sdk-main";
    for route in ["mocked", "claude", "gem"] {
        let (got, r) = answer(&w.gw, &fixture(name, route), true).await;
        assert_eq!(got.as_deref(), Some("text.verbosity"), "{route}");
        assert_eq!(r["tools"][0]["strict"], true, "{route}");
        assert_eq!(
            r["instructions"],
            "You answer weather questions. Use the tool."
        );
    }
    let (got, r) = answer(&w.gw, &fixture(name, "oai"), false).await;
    assert_eq!(got, None);
    assert_eq!(items(&r, "function_call")[0]["name"], "get_weather");
    assert_eq!(
        w.claude.requests()[0].body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    w.gw.stop().await;
}
