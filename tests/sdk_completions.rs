//! Official clients, unmodified, against the gateway on the shipped
//! policies (the `mock` providers): the OpenAI Python SDK's
//! `completions.create` (plain and streamed) and a chat stream with
//! `stream_options.include_usage`, and LangChain's
//! `ChatOpenAI(stream_usage=True)`. In CI a missing package fails the test
//! (`.ci/run` installs them); elsewhere it says that it skipped.

mod common;

use common::*;

/// The shipped policy folder as one document (its files share no key).
fn shipped() -> String {
    ["00-server.yaml", "10-providers.yaml", "20-routes.yaml"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(format!("{}/policies/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `tests/sdk/<script>` against a gateway on the shipped policies.
async fn run(script: &str) {
    let gw = gateway(&shipped()).await;
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .arg(path)
        .arg(format!("{}/v1", gw.base))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    gw.stop().await;
}

#[tokio::test]
async fn the_openai_sdk_runs_completions_and_streams_with_usage() {
    if python_module("openai") {
        run("completions.py").await;
    }
}

#[tokio::test]
async fn langchain_streams_usage_metadata_through_the_gateway() {
    if python_module("langchain_openai") {
        run("langchain_stream.py").await;
    }
}
