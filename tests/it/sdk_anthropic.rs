//! The official Anthropic Python SDK, unmodified, against the gateway's
//! `/v1/messages`: one route whose target is the Anthropic fake (passed
//! through) and one whose target is an OpenAI-kind fake (translated):
//! create, stream, tools (plain and streamed), count_tokens and errors. In
//! CI a missing SDK fails the test; elsewhere it says that it skipped.

use crate::common;

use common::anthropic::{FakeAnthropic, KEY_ENV, gateway};
use common::chat_tools::chat_fake;
use common::python_module;

#[tokio::test]
async fn the_anthropic_sdk_talks_to_native_and_translated_routes() {
    if !python_module("anthropic") {
        return;
    }
    let fake = FakeAnthropic::start().await;
    let chat = chat_fake().await;
    let yaml = format!(
        "providers:
  claude:
    kind: anthropic
    base_url: {}
    api_key_env: {KEY_ENV}
  oai:
    kind: openai
    base_url: {}
    api_key_env: TEST_UPSTREAM_KEY
routes:
  native:
    targets: [{{provider: claude, model: claude-sonnet-4-5}}]
    retry: {{max_attempts: 1}}
  translated:
    targets: [{{provider: oai, model: gpt-4o-mini}}]
    retry: {{max_attempts: 1}}
",
        fake.base_url(),
        chat.base_url()
    );
    let gw = gateway(&yaml).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/anthropic_sdk.py");
    let out = tokio::process::Command::new("python3")
        .args([script, &gw.base, "native", "translated", "native"])
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
    // Each way really served its route.
    assert!(fake.requests().len() >= 6, "{}", fake.requests().len());
    assert!(chat.calls() >= 5, "{}", chat.calls());
    gw.stop().await;
}
