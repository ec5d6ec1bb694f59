//! Official clients, unmodified, against the gateway on the shipped
//! policies (the `mock` providers): the OpenAI Python SDK's
//! `completions.create` (plain and streamed) and a chat stream with
//! `stream_options.include_usage`, and LangChain's
//! `ChatOpenAI(stream_usage=True)`. In CI a missing package fails the test
//! (`.ci/run` installs them); elsewhere it says that it skipped.

use crate::common;

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

/// A fake OpenAI-compatible `/v1/completions` (the public reference's
/// `text_completion` object and its stream, ending in `[DONE]`).
fn completion_reply(s: &Seen) -> Reply {
    let piece = |text: &str, finish: serde_json::Value| {
        serde_json::json!({"id": "cmpl-fake", "object": "text_completion", "created": 1,
            "model": s.body["model"],
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]})
    };
    if s.body["stream"] == true {
        let mut events: Vec<String> = [" there", " was", " a", " gateway"]
            .iter()
            .map(|t| format!("data: {}\n\n", piece(t, serde_json::Value::Null)))
            .collect();
        events.push(format!("data: {}\n\n", piece("", "stop".into())));
        events.push("data: [DONE]\n\n".into());
        return Reply::Sse(events, std::time::Duration::ZERO);
    }
    let mut body = piece(" there was a gateway", "stop".into());
    body["usage"] =
        serde_json::json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9});
    Reply::Json(200, body)
}

#[tokio::test]
async fn the_openai_sdk_runs_completions_through_to_an_openai_compatible_upstream() {
    if !python_module("openai") {
        return;
    }
    let up = FakeUpstream::start(|s, _| async move { completion_reply(&s) }).await;
    let yaml = format!(
        "{}routes:\n  legacy:\n    targets: [{{provider: p0, model: gpt-3.5-turbo-instruct}}]\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let script = format!(
        "{}/tests/sdk/completions_upstream.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("{}/v1", gw.base))
        .arg("legacy")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.path == "/v1/completions"));
    assert!(
        seen.iter()
            .all(|r| r.body["model"] == "gpt-3.5-turbo-instruct")
    );
    gw.stop().await;
}
