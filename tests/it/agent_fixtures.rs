//! The request bodies today's agents send (tests/it/fixtures/agents/:
//! Claude Code, Codex, the Vercel AI SDK, the OpenAI Agents SDK) through
//! the gateway to a mock route, a strict OpenAI-kind fake, the Anthropic
//! fake and the Gemini fake: each answer is a 200 in the client's own API
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
    let messages = f.path == "/v1/messages";
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

#[tokio::test]
async fn claude_code_turns_through_every_kind() {
    let w = world().await;
    // First turn: budgeted thinking, cache_control, tools, context management.
    let first = "claude_code.first_turn.json";
    let ignored = Some("cache_control, context_management".to_string());
    for route in ["mocked", "oai", "gem"] {
        let (got, m) = answer(&w.gw, &fixture(first, route), true).await;
        assert_eq!(got, ignored, "{route}");
        assert_eq!(blocks(&m, "thinking").len(), 1, "{route}: {m}");
    }
    let (got, m) = answer(&w.gw, &fixture(first, "claude"), false).await;
    assert_eq!(got, None, "nothing is ignored on a native target");
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(blocks(&m, "thinking")[0]["signature"], "fake-signature");
    let sent = &w.claude.requests()[0];
    let mut expected = fixture(first, "claude-sonnet-4-5").body;
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(
        sent.body, expected,
        "the client's body, only `model` replaced"
    );
    assert!(
        sent.headers["anthropic-beta"]
            .to_str()
            .unwrap()
            .contains("context-management")
    );
    assert!(sent.headers.get("x-api-key").unwrap() == FAKE_KEY);

    let chat = &w.oai.requests()[0].body;
    assert_eq!(chat["reasoning_effort"], "high", "31999 tokens of thinking");
    assert_eq!(chat["max_completion_tokens"], 32000);
    for k in [
        "thinking",
        "context_management",
        "top_k",
        "metadata",
        "system",
    ] {
        assert!(chat.get(k).is_none(), "{k} sent: {chat}");
    }
    assert_eq!(chat["messages"][0]["role"], "system");
    assert!(!chat.to_string().contains("cache_control"));
    let native = &w.gemini.requests()[0].body;
    assert_eq!(
        native["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 24576, "includeThoughts": true})
    );

    // A later turn: thinking history, a tool result, a system turn last,
    // adaptive thinking with an effort level.
    let main = "claude_code.main_turn.json";
    let ignored = Some("cache_control, messages:thinking, context_management".to_string());
    for route in ["mocked", "oai", "gem"] {
        let (got, m) = answer(&w.gw, &fixture(main, route), true).await;
        assert_eq!(got, ignored, "{route}");
        assert_eq!(m["stop_reason"], "end_turn", "{route}: {m}");
    }
    let chat = &w.oai.requests()[1].body;
    assert_eq!(chat["reasoning_effort"], "high");
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "system"]);
    assert!(
        chat["messages"][4]["content"]
            .as_str()
            .unwrap()
            .contains("task list")
    );
    let native = &w.gemini.requests()[1].body;
    let instruction = native["systemInstruction"].to_string();
    assert!(instruction.contains("task list"), "merged: {instruction}");
    assert_eq!(
        native["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 16384, "includeThoughts": true})
    );
    let (got, m) = answer(&w.gw, &fixture(main, "claude"), false).await;
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
    for name in ["claude_code.title.json", "vercel_ai.generate_object.json"] {
        for route in ["mocked", "oai", "gem", "claude"] {
            let translated = route != "claude";
            let (got, m) = answer(&w.gw, &fixture(name, route), translated).await;
            assert_eq!(got, None, "{name} on {route}: nothing ignored");
            let text = blocks(&m, "text")[0]["text"].as_str().unwrap().to_string();
            let parsed: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{name} on {route}: not JSON: {text}"));
            assert!(parsed.is_object(), "{name} on {route}: {parsed}");
        }
    }
    let schema_of =
        |name: &str| fixture(name, "x").body["output_config"]["format"]["schema"].clone();
    let oai = w.oai.requests();
    assert_eq!(
        oai[0].body["response_format"],
        json!({"type": "json_schema",
               "json_schema": {"name": "output", "schema": schema_of("claude_code.title.json")}})
    );
    assert!(oai.iter().all(|r| r.body.get("output_config").is_none()));
    let gem = w.gemini.requests();
    assert_eq!(
        gem[0].body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert!(gem[0].body["generationConfig"]["responseSchema"].is_object());
    // The native target got `output_config` as the client sent it.
    assert_eq!(
        w.claude.requests()[1].body["output_config"]["format"]["schema"],
        schema_of("vercel_ai.generate_object.json")
    );
    w.gw.stop().await;
}

#[tokio::test]
async fn codex_turns_through_every_kind() {
    let w = world().await;
    let first = "codex.first_turn.json";
    let ignored = "client_metadata, prompt_cache_key, include:reasoning.encrypted_content, \
                   tools:web_search, tools:namespace, text.verbosity";
    for route in ["mocked", "claude", "gem"] {
        let (got, r) = answer(&w.gw, &fixture(first, route), true).await;
        // Gemini cannot hold the model to one tool call per turn.
        let want = match route {
            "gem" => format!("{ignored}, parallel_tool_calls"),
            _ => ignored.to_string(),
        };
        assert_eq!(got.as_deref(), Some(want.as_str()), "{route}");
        assert_eq!(items(&r, "reasoning").len(), 1, "{route}: {r}");
        let reasoning = &items(&r, "reasoning")[0];
        assert_eq!(reasoning["summary"][0]["type"], "summary_text", "{r}");
        assert_eq!(r["reasoning"]["effort"], "medium");
    }
    // The fakes called a tool; Codex reads a function_call item.
    let (_, r) = answer(&w.gw, &fixture(first, "claude"), true).await;
    let call = &items(&r, "function_call")[0];
    assert_eq!(call["name"], "shell_command");
    let (got, r) = answer(&w.gw, &fixture(first, "oai"), false).await;
    assert_eq!(got, None, "passed through to a Responses upstream");
    assert_eq!(items(&r, "function_call")[0]["name"], "shell_command");
    let native = &w.oai.requests()[0].body;
    assert_eq!(
        native["client_metadata"],
        fixture(first, "x").body["client_metadata"]
    );
    assert_eq!(native["model"], "gpt-5-mini");

    let anthropic = &w.claude.requests()[0].body;
    assert_eq!(
        anthropic["thinking"],
        json!({"type": "enabled", "budget_tokens": 4095}),
        "medium effort within the default 4096 max_tokens"
    );
    let tools: Vec<&str> = anthropic["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["shell_command", "update_plan"]);
    assert_eq!(
        anthropic["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true}),
        "parallel_tool_calls: false"
    );
    assert!(
        anthropic["system"]
            .to_string()
            .contains("permissions instructions")
    );
    let gem = &w.gemini.requests()[0].body;
    assert_eq!(
        gem["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );

    // After the tool ran: reasoning item and call history, the tool output.
    let tool = "codex.tool_turn.json";
    let ignored = "client_metadata, prompt_cache_key, include:reasoning.encrypted_content, \
                   input:reasoning, tools:web_search";
    for route in ["mocked", "claude", "gem"] {
        let (got, r) = answer(&w.gw, &fixture(tool, route), true).await;
        let want = match route {
            "gem" => format!("{ignored}, parallel_tool_calls"),
            _ => ignored.to_string(),
        };
        assert_eq!(got.as_deref(), Some(want.as_str()), "{route}");
        let text = items(&r, "message")[0]["content"][0]["text"].to_string();
        assert!(text.contains("18C"), "{route}: {r}");
    }
    let (_, r) = answer(&w.gw, &fixture(tool, "oai"), false).await;
    assert!(r["output"].to_string().contains("18C"));
    w.gw.stop().await;
}

#[tokio::test]
async fn the_openai_agents_sdk_request_through_every_kind() {
    let w = world().await;
    let name = "openai_agents.first_turn.json";
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
