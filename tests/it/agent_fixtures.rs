//! The request bodies today's agents send (tests/it/fixtures/agents/:
//! Claude Code's and Codex's captured from the real CLIs, the Vercel AI
//! SDK's and the OpenAI Agents SDK's built from their sources) through the
//! gateway to a mock route, a strict OpenAI-kind fake, the Anthropic fake
//! and the Gemini fake: each answer is a 200 in the client's own API
//! shape (parsed: blocks, items, stop reasons, usage, stream order),
//! `x-switchyard-ignored` names exactly what was accepted and not sent,
//! and each fake saw the reasoning control mapped to its own and nothing
//! it refuses (the fakes check their API's rules and answer 400
//! otherwise).

use crate::common;

use common::anthropic::{FAKE_KEY, FakeAnthropic, KEY_ENV};
use common::gemini::{FakeGemini, GEMINI_KEY};
use common::wire_shapes::{
    Fixture, check_message, check_response, fixture, message_from_stream, response_from_stream,
    sse_events,
};
use common::{FakeUpstream, TestGateway};
use serde_json::{Value, json};

struct World {
    gw: TestGateway,
    oai: FakeUpstream,
    claude: FakeAnthropic,
    gemini: FakeGemini,
}

/// Routes `mocked`, `oai` (gpt-5-mini), `claude` (claude-sonnet-4-5) and
/// `gem` (gemini-2.5-flash) drop what chat cannot express; `strict` (the
/// mock again) keeps the default, reject.
async fn world() -> World {
    let oai = common::openai_strict::start().await;
    let claude = FakeAnthropic::start().await;
    let gemini = FakeGemini::start().await;
    let yaml = format!(
        "providers:
  m:
    kind: mock
  oai:
    kind: openai
    base_url: {}
    api_key_env: TEST_UPSTREAM_KEY
  claude:
    kind: anthropic
    base_url: {}
    api_key_env: {KEY_ENV}
  gem:
    kind: gemini
    base_url: {}
    api_key_env: GEMINI_API_KEY
routes:
  mocked:
    unsupported: drop
    targets: [{{provider: m}}]
  strict:
    targets: [{{provider: m}}]
  oai:
    unsupported: drop
    retry: {{max_attempts: 1}}
    targets: [{{provider: oai, model: gpt-5-mini}}]
  claude:
    unsupported: drop
    retry: {{max_attempts: 1}}
    targets: [{{provider: claude, model: claude-sonnet-4-5}}]
  gem:
    unsupported: drop
    retry: {{max_attempts: 1}}
    targets: [{{provider: gem, model: gemini-2.5-flash}}]
",
        oai.base_url(),
        claude.base_url(),
        gemini.base_url()
    );
    let gw = common::gateway_env(
        &yaml,
        &[(KEY_ENV, FAKE_KEY), ("GEMINI_API_KEY", GEMINI_KEY)],
    )
    .await;
    World {
        gw,
        oai,
        claude,
        gemini,
    }
}

/// Sends `f` as its client does (its headers, a client key the gateway
/// must not forward).
async fn send(gw: &TestGateway, f: &Fixture) -> reqwest::Response {
    let mut r = gw
        .http
        .post(format!("{}{}", gw.base, f.path))
        .header("x-api-key", "sk-client-never-forwarded")
        .json(&f.body);
    for (k, v) in &f.headers {
        r = r.header(k.as_str(), v.as_str());
    }
    r.send().await.unwrap()
}

/// The status, `x-switchyard-ignored` and the answer, parsed and checked
/// against the API's shape (a stream assembled first).
async fn answer(gw: &TestGateway, f: &Fixture, translated: bool) -> (Option<String>, Value) {
    let r = send(gw, f).await;
    let status = r.status();
    let ignored = r
        .headers()
        .get("x-switchyard-ignored")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{}: {text}", f.path);
    let messages = f.path.starts_with("/v1/messages");
    let v = match (f.body["stream"] == true, messages) {
        (true, true) => message_from_stream(&sse_events(&text)),
        (true, false) => response_from_stream(&sse_events(&text), translated),
        (false, true) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            check_message(&v);
            v
        }
        (false, false) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            check_response(&v, translated);
            v
        }
    };
    (ignored, v)
}

fn blocks(m: &Value, ty: &str) -> Vec<Value> {
    m["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == ty)
        .cloned()
        .collect()
}

fn items(r: &Value, ty: &str) -> Vec<Value> {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == ty)
        .cloned()
        .collect()
}

/// What a route's answer says was ignored, for each route.
fn ignored(got: &Option<String>) -> &str {
    got.as_deref().unwrap_or("")
}

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
