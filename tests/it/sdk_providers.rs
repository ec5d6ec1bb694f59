//! The official OpenAI Python SDK, unmodified, against routes whose targets
//! are the native Anthropic and Gemini fakes: chat, streams with usage,
//! tools (plain, streamed, tool results) and embeddings. In CI a missing SDK
//! fails the test; elsewhere it says that it skipped.

use crate::common;

use common::anthropic::{FAKE_KEY, FakeAnthropic, KEY_ENV};
use common::gemini::{FakeGemini, GEMINI_KEY};
use common::*;

#[tokio::test]
async fn the_openai_sdk_talks_to_anthropic_and_gemini_through_the_gateway() {
    if !python_module("openai") {
        return;
    }
    let anthropic = FakeAnthropic::start().await;
    let gemini = FakeGemini::start().await;
    let yaml = format!(
        "providers:
  claude:
    kind: anthropic
    base_url: {}
    api_key_env: {KEY_ENV}
  gem:
    kind: gemini
    base_url: {}
    api_key_env: GEMINI_TEST_KEY
routes:
  via-anthropic:
    targets: [{{provider: claude, model: claude-sonnet-4-5}}, {{provider: gem, model: gemini-2.5-flash}}]
  via-gemini:
    targets: [{{provider: gem, model: gemini-2.5-flash}}, {{provider: claude, model: claude-sonnet-4-5}}]
  gemini-embed:
    targets: [{{provider: gem, model: gemini-embedding-001}}]
",
        anthropic.base_url(),
        gemini.base_url()
    );
    let gw = gateway_env(
        &yaml,
        &[(KEY_ENV, FAKE_KEY), ("GEMINI_TEST_KEY", GEMINI_KEY)],
    )
    .await;
    let base = format!("{}/v1", gw.base);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/providers.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&base)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ALL OK"), "{stdout}");
    // Both native upstreams really served: nothing fell back to the other.
    assert!(!anthropic.requests().is_empty());
    assert!(gemini.requests().len() >= 2);
    gw.stop().await;
}
