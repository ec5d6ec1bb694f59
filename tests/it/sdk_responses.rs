//! The official OpenAI Python SDK, unmodified, on `/v1/responses`
//! (`responses.create`, tools with `function_call_output`, `responses.stream`
//! with `get_final_response()`, `responses.parse` with a pydantic model;
//! `store`, `previous_response_id`, `retrieve` and `delete` where the route
//! is translated: the gateway keeps the conversation)
//! against the shipped `policies/` (mock, translated), an openai-kind fake
//! of the Responses API (passed through) and the Anthropic fake
//! (translated); and LangChain's `ChatOpenAI` on the shipped policies. In CI
//! a missing package fails the test; elsewhere it says that it skipped.

use crate::common;

use common::anthropic::{FAKE_KEY, FakeAnthropic, KEY_ENV};
use common::*;

async fn run(script: &str, args: &[&str]) -> String {
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{args:?}:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn the_openai_sdk_uses_the_responses_api_through_every_kind() {
    if !python_module("openai") || !python_module("pydantic") {
        return;
    }
    let shipped = shipped_gateway().await;
    let base = format!("{}/v1", shipped.base);
    // The mock calls tools, honours json_schema and reports stream usage.
    run(
        "responses.py",
        &[
            &base,
            "gpt-4o-mini",
            "text,tools,stream,stream_usage,parse,state",
        ],
    )
    .await;
    shipped.stop().await;

    let openai = common::responses::start().await;
    let anthropic = FakeAnthropic::start().await;
    let yaml = format!(
        "providers:
  up:
    kind: openai
    base_url: {}
    api_key_env: TEST_UPSTREAM_KEY
  claude:
    kind: anthropic
    base_url: {}
    api_key_env: {KEY_ENV}
    structured_outputs: true
routes:
  via-openai:
    targets: [{{provider: up, model: gpt-4.1}}]
  via-anthropic:
    targets: [{{provider: claude, model: claude-sonnet-4-5}}]
",
        openai.base_url(),
        anthropic.base_url()
    );
    let gw = gateway_env(&yaml, &[(KEY_ENV, FAKE_KEY)]).await;
    let base = format!("{}/v1", gw.base);
    run(
        "responses.py",
        &[&base, "via-openai", "text,tools,stream,stream_usage,parse"],
    )
    .await;
    run(
        "responses.py",
        &[
            &base,
            "via-anthropic",
            "text,tools,stream,stream_usage,parse,state",
        ],
    )
    .await;
    // Each really served its part: passed through, and translated.
    assert!(openai.requests().iter().all(|r| r.path == "/v1/responses"));
    assert!(openai.requests().len() >= 7);
    assert!(anthropic.requests().len() >= 6);
    gw.stop().await;
}

#[tokio::test]
async fn langchain_chat_openai_on_the_shipped_policies() {
    if !python_module("langchain_openai") {
        return;
    }
    let gw = shipped_gateway().await;
    let base = format!("{}/v1", gw.base);
    let out = run("langchain_responses.py", &[&base, "gpt-4o-mini"]).await;
    assert!(out.contains("responses ok"), "{out}");
    eprintln!("{out}");
    gw.stop().await;
}
