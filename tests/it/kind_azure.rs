//! `kind: azure` end to end: the real gateway over HTTP against a fake Azure
//! OpenAI resource (tests/it/common/azure.rs) on 127.0.0.1:0.

use crate::common;

use common::azure::{API_VERSION, Failure, FakeAzure};
use common::*;
use serde_json::{Value, json};

/// A provider `az` on `fake` (route model `gpt-4o` -> deployment `prod-4o`).
fn azure_provider(fake: &FakeAzure, extra: &str) -> String {
    format!(
        "  az:\n    kind: azure\n    endpoint: {}\n    api_key_env: TEST_UPSTREAM_KEY\n    deployments:\n      gpt-4o: prod-4o\n{extra}",
        fake.endpoint()
    )
}

fn one_route(fake: &FakeAzure, route: &str, target_model: &str) -> String {
    format!(
        "providers:\n{}routes:\n  {route}:\n    targets:\n      - provider: az\n        model: {target_model}\n",
        azure_provider(fake, "")
    )
}

/// The `data:` payloads of an SSE body, each parsed; `[DONE]` must be last.
fn chunks_of(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut done = false;
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data event: {event:?}"));
        assert!(!done, "an event after [DONE]");
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert!(
            chunk["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{chunk}"
        );
        assert!(chunk["choices"].is_array(), "{chunk}");
        out.push(chunk);
    }
    assert!(done, "no [DONE] in {text}");
    out
}

#[tokio::test]
async fn plain_chat_goes_to_the_deployment_with_the_api_key_header() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let gw = gateway(&one_route(&fake, "chat", "gpt-4o")).await;
    let resp = gw.chat("chat", "hello there").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "az");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Echo: hello there"
    );
    assert_eq!(body["usage"]["total_tokens"], 12);
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/openai/deployments/prod-4o/chat/completions");
    assert_eq!(
        seen.query.as_deref(),
        Some(&*format!("api-version={API_VERSION}"))
    );
    assert_eq!(seen.headers["api-key"], TEST_KEY);
    assert!(!seen.headers.contains_key("authorization"));
    assert_eq!(seen.body["messages"][0]["content"], "hello there");
}

#[tokio::test]
async fn a_model_without_a_mapping_is_its_own_deployment_and_api_version_is_configurable() {
    let fake = FakeAzure::start(&["gpt-4o-mini"]).await;
    let yaml = format!(
        "providers:\n{}    api_version: '2024-06-01'\nroutes:\n  mini:\n    targets: [{{provider: az, model: gpt-4o-mini}}]\n",
        azure_provider(&fake, "")
    );
    let gw = gateway(&yaml).await;
    // The fake serves 2024-10-21 only: its 400 comes back as is, not retried.
    let resp = gw.chat("mini", "hi").await;
    assert_eq!(resp.status(), 400);
    let error = error_of(resp).await;
    assert_eq!(error["message"], "API version not supported");
    assert_eq!(fake.calls(), 1);
    let seen = &fake.requests()[0];
    assert_eq!(
        seen.path,
        "/openai/deployments/gpt-4o-mini/chat/completions"
    );
    assert_eq!(seen.query.as_deref(), Some("api-version=2024-06-01"));
}

#[tokio::test]
async fn streaming_with_usage_drops_azure_filter_annotations() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let gw = gateway(&one_route(&fake, "chat", "gpt-4o")).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let chunks = chunks_of(&resp.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Echo: one two three");
    assert!(
        chunks
            .iter()
            .all(|c| c.get("prompt_filter_results").is_none())
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(
        fake.requests()[0].body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn tool_calls_streamed_and_not_and_images_pass_through() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let gw = gateway(&one_route(&fake, "chat", "gpt-4o")).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    let ask = |stream: bool| {
        json!({"model": "chat", "stream": stream, "tools": tools,
               "messages": [{"role": "user", "content": "What is the weather in Paris?"}]})
    };
    let body: Value = gw
        .post("/v1/chat/completions", ask(false))
        .await
        .json()
        .await
        .unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"location\":\"Paris\"}");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");

    let resp = gw.post("/v1/chat/completions", ask(true)).await;
    let chunks = chunks_of(&resp.text().await.unwrap());
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], "call_azure_1");
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"location\":\"Paris\"}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The tool result round trip.
    let body: Value = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "tools": tools, "messages": [
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_azure_1", "content": "22C and sunny"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The tool said: 22C and sunny"
    );

    let body: Value = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Echo: What is in this image? (+1 images)"
    );
    let seen = fake.requests();
    assert_eq!(
        seen.last().unwrap().body["messages"][0]["content"][1]["image_url"]["detail"],
        "low"
    );
}

#[tokio::test]
async fn embeddings_fan_out_in_batches_of_at_most_2048_in_order() {
    let fake = FakeAzure::start(&["embed-3"]).await;
    let yaml = format!(
        "providers:\n{}    max_batch_inputs: 5000\nroutes:\n  text-embedding-3-small:\n    targets: [{{provider: az, model: embed-3}}]\n",
        azure_provider(&fake, "")
    );
    let gw = gateway(&yaml).await;
    let inputs: Vec<Value> = (0..2100)
        .map(|i| json!(format!("text number {i}")))
        .collect();
    let resp = gw.embed("text-embedding-3-small", json!(inputs)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2100);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        let got: Vec<f32> = serde_json::from_value(item["embedding"].clone()).unwrap();
        assert_eq!(got, expected_vector(&inputs[i]), "vector {i}");
    }
    assert_eq!(body["usage"]["prompt_tokens"], 2100);
    let mut sizes: Vec<usize> = fake
        .requests()
        .iter()
        .map(|s| {
            assert_eq!(s.path, "/openai/deployments/embed-3/embeddings");
            assert_eq!(s.headers["api-key"], TEST_KEY);
            s.body["input"].as_array().unwrap().len()
        })
        .collect();
    sizes.sort();
    assert!(sizes.iter().all(|&n| n <= 2048), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 2100);
    assert_eq!(sizes.len(), 2);
}

#[tokio::test]
async fn content_filter_refusal_is_a_400_not_retried_nor_failed_over() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let backup = FakeUpstream::openai().await;
    let yaml = format!(
        "providers:\n{}  backup:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\nroutes:\n  chat:\n    targets:\n      - {{provider: az, model: gpt-4o}}\n      - {{provider: backup}}\n",
        azure_provider(&fake, ""),
        backup.base_url()
    );
    let gw = gateway(&yaml).await;
    let resp = gw.chat("chat", "something forbidden").await;
    assert_eq!(resp.status(), 400);
    let error = error_of(resp).await;
    assert_eq!(error["code"], "content_filter");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "prompt");
    assert_eq!(
        error["innererror"]["content_filter_result"]["violence"]["filtered"],
        true
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("content management policy")
    );
    assert_eq!(fake.calls(), 1, "not retried");
    assert_eq!(backup.calls(), 0, "not failed over");
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_ms_or_fail_over() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let backup = FakeUpstream::openai().await;
    let yaml = format!(
        "providers:\n{}  backup:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\nroutes:\n  waits:\n    targets: [{{provider: az, model: gpt-4o}}]\n    retry: {{on_rate_limit: wait}}\n  moves:\n    targets:\n      - {{provider: az, model: gpt-4o}}\n      - {{provider: backup}}\n",
        azure_provider(&fake, ""),
        backup.base_url()
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::RateLimited { ms: 20 });
    let resp = gw.chat("waits", "again").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "az");
    assert_eq!(fake.calls(), 2, "retried after retry-after-ms");

    fake.fail_next(Failure::RateLimited { ms: 20 });
    let resp = gw.chat("moves", "elsewhere").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "backup");
    assert_eq!(fake.calls(), 3);
    assert_eq!(backup.calls(), 1);
    assert_eq!(
        gw.metric("switchyard_upstream_requests_total{outcome=\"status_429\",provider=\"az\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn failover_from_azure_to_mock_and_from_openai_to_azure() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let broken = FakeUpstream::start(|_, _| async {
        Reply::Json(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    })
    .await;
    let yaml = format!(
        "providers:\n{}  spare:\n    kind: mock\n  broken:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\nroutes:\n  to-mock:\n    targets:\n      - {{provider: az, model: gpt-4o}}\n      - {{provider: spare}}\n    retry: {{max_attempts: 2, initial_backoff: 1ms}}\n  to-azure:\n    targets:\n      - {{provider: broken}}\n      - {{provider: az, model: gpt-4o}}\n    retry: {{max_attempts: 1}}\n",
        azure_provider(&fake, ""),
        broken.base_url()
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::Internal);
    fake.fail_next(Failure::Internal);
    let resp = gw.chat("to-mock", "hello").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "spare");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "[spare] You said: hello"
    );
    assert_eq!(fake.calls(), 2, "retried once, then failed over");

    let resp = gw.chat("to-azure", "hello").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "az");
    assert_eq!(broken.calls(), 1);
}

#[tokio::test]
async fn a_stream_cut_before_done_ends_with_an_error_event() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let gw = gateway(&one_route(&fake, "chat", "gpt-4o")).await;
    fake.fail_next(Failure::StreamCut);
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3, "{text}");
    // The role chunk and the first content got through (the annotation did
    // not), then the error.
    let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let content: Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
    assert!(
        content["choices"][0]["delta"]["content"].is_string(),
        "{text}"
    );
    let error: Value = serde_json::from_str(events[2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "stream_interrupted");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[DONE]")
    );
    assert!(!text.contains("[DONE]\n"));
}

#[test]
fn check_reports_azure_keys_at_their_lines() {
    use std::sync::Arc;
    use switchyard::config::{Env, Source, load_sources};
    let text = "providers:\n  az:\n    kind: azure\n    api_key_env: AZ_KEY\n    deployment: x\nroutes:\n  r:\n    targets: [{provider: az}]\n";
    let env: Env = Arc::new(|_| None);
    let errors = load_sources(
        &[Source {
            name: "policy.yaml".into(),
            text: text.into(),
        }],
        &env,
        switchyard::providers::check_kind,
    )
    .unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let has = |needle: &str| lines.iter().any(|l| l.starts_with(needle));
    assert!(
        has("policy.yaml:3: providers.az.endpoint: is required for kind azure"),
        "{lines:?}"
    );
    assert!(
        has("policy.yaml:4: providers.az.api_key_env: environment variable AZ_KEY is not set"),
        "{lines:?}"
    );
    assert!(
        has("policy.yaml:5: providers.az.deployment: unknown field `deployment` for kind azure"),
        "{lines:?}"
    );
}
