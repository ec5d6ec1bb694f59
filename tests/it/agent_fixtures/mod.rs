//! The request bodies today's agents send (tests/it/fixtures/agents/:
//! Claude Code's and Codex's captured from the real CLIs, the Vercel AI
//! SDK's and the OpenAI Agents SDK's built from their sources) through the
//! gateway to a mock route, a strict OpenAI-kind fake, the Anthropic fake
//! and the Gemini fake (and a Bedrock fake serving a Claude model): each
//! answer is a 200 in the client's own API shape (parsed: blocks, items,
//! stop reasons, usage, stream order), `x-switchyard-ignored` names exactly
//! what was accepted and not sent, and each fake saw the reasoning control
//! mapped to its own and nothing it refuses (the fakes check their API's
//! rules and answer 400 otherwise). `messages`: Claude Code and the Vercel
//! AI SDK; `responses`: Codex and the OpenAI Agents SDK; `bedrock`: both on
//! a Bedrock Claude model.

mod bedrock;
mod messages;
mod responses;

use crate::common;

use common::anthropic::{FAKE_KEY, FakeAnthropic, KEY_ENV};
use common::gemini::{FakeGemini, GEMINI_KEY};
pub(super) use common::wire_shapes::fixture;
use common::wire_shapes::{
    Fixture, check_message, check_response, message_from_stream, response_from_stream, sse_events,
};
use common::{FakeUpstream, TestGateway};
use serde_json::Value;

pub(super) struct World {
    pub gw: TestGateway,
    pub oai: FakeUpstream,
    pub claude: FakeAnthropic,
    pub gemini: FakeGemini,
}

/// Routes `mocked`, `oai` (gpt-5-mini), `claude` (claude-sonnet-4-5) and
/// `gem` (gemini-2.5-flash) drop what chat cannot express; `strict` (the
/// mock again) keeps the default, reject.
pub(super) async fn world() -> World {
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
pub(super) async fn send(gw: &TestGateway, f: &Fixture) -> reqwest::Response {
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
pub(super) async fn answer(
    gw: &TestGateway,
    f: &Fixture,
    translated: bool,
) -> (Option<String>, Value) {
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

pub(super) fn blocks(m: &Value, ty: &str) -> Vec<Value> {
    m["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == ty)
        .cloned()
        .collect()
}

pub(super) fn items(r: &Value, ty: &str) -> Vec<Value> {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == ty)
        .cloned()
        .collect()
}

/// What a route's answer says was ignored, for each route.
pub(super) fn ignored(got: &Option<String>) -> &str {
    got.as_deref().unwrap_or("")
}
