//! Token usage read from every kind of answer and counted in
//! `switchyard_tokens_total{route,provider,key,kind}`, over HTTP against
//! fakes that report fixed counts: chat JSON and streams (the gateway asks
//! the upstream for usage and strips it for clients that did not ask),
//! cached chat (hits spend nothing), embeddings summed over sub-batches and
//! partly cached, completions, the Responses API and Messages (passed
//! through and translated), a translated provider's stream; callers
//! without a configured key count as `key="_unknown"`.

use crate::common;

use common::usage::{ANTHROPIC, CHAT, COMPLETIONS, Counts, RESPONSES};
use common::{FakeUpstream, TestGateway, eventually};
use serde_json::{Value, json};

struct Setup {
    gw: TestGateway,
    oai: FakeUpstream,
}

/// Routes: `chat` (openai fake), `cached` (the same, cached), `claude`
/// (Anthropic fake), `emb` (openai fake, 2 inputs per call, cached).
async fn setup() -> Setup {
    let oai = common::usage::openai().await;
    let claude = common::usage::anthropic().await;
    let yaml = format!(
        "providers:
  oai:
    kind: openai
    base_url: {}
    api_key_env: TEST_UPSTREAM_KEY
  claude:
    kind: anthropic
    base_url: http://{}
    api_key_env: {}
routes:
  chat:
    targets: [{{provider: oai, model: gpt-up}}]
  cached:
    targets: [{{provider: oai, model: gpt-up}}]
    cache: {{enabled: true, ttl: 1h}}
  claude:
    targets: [{{provider: claude, model: claude-up}}]
  emb:
    targets: [{{provider: oai, model: emb-up, max_batch_inputs: 2}}]
    cache: {{enabled: true, ttl: 1h}}
",
        oai.base_url(),
        claude.addr,
        common::anthropic::KEY_ENV
    );
    let gw = common::anthropic::gateway(&yaml).await;
    Setup { gw, oai }
}

/// One sample of the exposition text (labels in alphabetical order), 0 if absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// (prompt, completion, cached) counted for `route` at `provider`, key `_unknown`.
async fn counted(gw: &TestGateway, route: &str, provider: &str) -> Counts {
    let text = gw.metrics().await;
    let kind = |k: &str| {
        sample(
            &text,
            &format!(
                "switchyard_tokens_total{{key=\"_unknown\",kind=\"{k}\",provider=\"{provider}\",route=\"{route}\"}}"
            ),
        )
    };
    (kind("prompt"), kind("completion"), kind("cached"))
}

fn times(c: Counts, n: f64) -> Counts {
    (c.0 * n, c.1 * n, c.2 * n)
}

/// Waits until `route`'s counts at `provider` are `expected` (stream
/// metrics are written when the body has ended, after the client read it).
async fn counted_eventually(gw: &TestGateway, route: &str, provider: &str, expected: Counts) {
    eventually(async || counted(gw, route, provider).await == expected).await;
}

/// The JSON payloads of an SSE body's data events, `[DONE]` left out.
async fn data_events(r: reqwest::Response) -> Vec<Value> {
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn with_usage(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| !e["usage"].is_null()).collect()
}

/// No chunk has a `usage` field at all (not even `null`), as when the
/// upstream was never asked for usage.
fn no_usage_field(events: &[Value]) -> bool {
    !events.is_empty() && events.iter().all(|e| e.get("usage").is_none())
}

fn chat_body(route: &str, stream: bool) -> Value {
    json!({"model": route, "stream": stream,
           "messages": [{"role": "user", "content": "Say hello"}]})
}

#[tokio::test]
async fn chat_json_is_counted_exactly_and_cache_hits_spend_nothing() {
    let Setup { gw, .. } = setup().await;
    let r = gw
        .post("/v1/chat/completions", chat_body("chat", false))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["usage"]["prompt_tokens"], 12,
        "the answer is unchanged"
    );
    assert_eq!(counted(&gw, "chat", "oai").await, CHAT);

    let first = gw
        .post("/v1/chat/completions", chat_body("cached", false))
        .await;
    assert_eq!(first.headers()["x-switchyard-cache"], "miss");
    let again = gw
        .post("/v1/chat/completions", chat_body("cached", false))
        .await;
    assert_eq!(again.headers()["x-switchyard-cache"], "hit");
    assert_eq!(
        counted(&gw, "cached", "oai").await,
        CHAT,
        "the hit spent no tokens"
    );
    let text = gw.metrics().await;
    assert!(
        !text.contains("switchyard_cost_usd_total{"),
        "no prices configured, no cost:\n{text}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_chat_stream_without_include_usage_is_counted_and_gets_no_usage_chunk() {
    let Setup { gw, oai } = setup().await;
    let events = data_events(
        gw.post("/v1/chat/completions", chat_body("chat", true))
            .await,
    )
    .await;
    let sent = oai.requests().pop().unwrap();
    assert_eq!(
        sent.body["stream_options"]["include_usage"], true,
        "the gateway asked the upstream for usage"
    );
    assert!(no_usage_field(&events), "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| !e["choices"].as_array().unwrap().is_empty()),
        "the usage-only chunk is gone: {events:?}"
    );
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there");
    counted_eventually(&gw, "chat", "oai", CHAT).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_chat_stream_with_include_usage_gets_the_usage_chunk_and_is_counted() {
    let Setup { gw, .. } = setup().await;
    let mut body = chat_body("chat", true);
    body["stream_options"] = json!({"include_usage": true});
    let events = data_events(gw.post("/v1/chat/completions", body).await).await;
    let usage = with_usage(&events);
    assert_eq!(usage.len(), 1, "{events:?}");
    assert_eq!(usage[0]["usage"]["prompt_tokens"], 12);
    assert_eq!(usage[0]["choices"], json!([]));
    counted_eventually(&gw, "chat", "oai", CHAT).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_cached_chat_stream_counts_the_upstream_call_not_the_replay() {
    let Setup { gw, oai } = setup().await;
    let first = gw
        .post("/v1/chat/completions", chat_body("cached", true))
        .await;
    assert_eq!(first.headers()["x-switchyard-cache"], "miss");
    assert!(no_usage_field(&data_events(first).await));
    counted_eventually(&gw, "cached", "oai", CHAT).await;
    let again = gw
        .post("/v1/chat/completions", chat_body("cached", true))
        .await;
    assert_eq!(again.headers()["x-switchyard-cache"], "hit");
    data_events(again).await;
    let done = r#"switchyard_requests_total{endpoint="chat",route="cached",status="200"}"#;
    eventually(async || gw.metric(done).await == 2.0).await;
    assert_eq!(counted(&gw, "cached", "oai").await, CHAT);
    assert_eq!(oai.calls(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn embeddings_sum_sub_batches_and_leave_cached_inputs_out() {
    let Setup { gw, oai } = setup().await;
    // 3 inputs in sub-batches of 2 and 1, 2 tokens each.
    let r = gw.embed("emb", json!(["a", "b", "c"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    assert_eq!(r.headers()["x-switchyard-cached-inputs"], "0");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 6);
    assert_eq!(oai.calls(), 2);
    assert_eq!(counted(&gw, "emb", "oai").await, (6.0, 0.0, 0.0));

    // a and b are cached; d and e go upstream in one call.
    let r = gw.embed("emb", json!(["a", "d", "e", "b"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "partial");
    assert_eq!(r.headers()["x-switchyard-cached-inputs"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 4, "only what was sent");
    assert_eq!(oai.calls(), 3);
    assert_eq!(counted(&gw, "emb", "oai").await, (10.0, 0.0, 0.0));

    let r = gw.embed("emb", json!(["e", "c"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    assert_eq!(r.headers()["x-switchyard-cached-inputs"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 0);
    assert_eq!(counted(&gw, "emb", "oai").await, (10.0, 0.0, 0.0));
    gw.stop().await;
}

#[tokio::test]
async fn completions_json_and_streams_are_counted_and_streams_stripped() {
    let Setup { gw, oai } = setup().await;
    let r = gw
        .post("/v1/completions", json!({"model": "chat", "prompt": "Say"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(counted(&gw, "chat", "oai").await, COMPLETIONS);
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "chat", "prompt": "Say", "stream": true}),
        )
        .await;
    let events = data_events(r).await;
    assert_eq!(
        oai.requests().pop().unwrap().body["stream_options"]["include_usage"],
        true
    );
    assert!(no_usage_field(&events), "{events:?}");
    assert_eq!(events.len(), 2, "the usage-only chunk is gone: {events:?}");
    counted_eventually(&gw, "chat", "oai", times(COMPLETIONS, 2.0)).await;
    gw.stop().await;
}

#[tokio::test]
async fn responses_are_counted_passed_through_and_translated() {
    let Setup { gw, .. } = setup().await;
    let body =
        |route: &str, stream: bool| json!({"model": route, "input": "Say hello", "stream": stream});
    // Passed through to the openai-kind fake.
    let r = gw.post("/v1/responses", body("chat", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(counted(&gw, "chat", "oai").await, RESPONSES);
    let events = data_events(gw.post("/v1/responses", body("chat", true)).await).await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    counted_eventually(&gw, "chat", "oai", times(RESPONSES, 2.0)).await;

    // Translated to chat for the Anthropic fake (and its answer back).
    let r = gw.post("/v1/responses", body("claude", false)).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["usage"]["input_tokens"], 45);
    assert_eq!(answer["usage"]["input_tokens_details"]["cached_tokens"], 30);
    assert_eq!(counted(&gw, "claude", "claude").await, ANTHROPIC);
    let events = data_events(gw.post("/v1/responses", body("claude", true)).await).await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    counted_eventually(&gw, "claude", "claude", times(ANTHROPIC, 2.0)).await;
    gw.stop().await;
}

#[tokio::test]
async fn messages_are_counted_natively_and_translated() {
    let Setup { gw, .. } = setup().await;
    let body = |route: &str, stream: bool| {
        json!({"model": route, "max_tokens": 100, "stream": stream,
               "messages": [{"role": "user", "content": "Say hello"}]})
    };
    // Natively to the Anthropic fake: its usage as it is.
    let r = gw.post("/v1/messages", body("claude", false)).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 30);
    assert_eq!(counted(&gw, "claude", "claude").await, ANTHROPIC);
    let events = data_events(gw.post("/v1/messages", body("claude", true)).await).await;
    assert_eq!(events.last().unwrap()["type"], "message_stop");
    counted_eventually(&gw, "claude", "claude", times(ANTHROPIC, 2.0)).await;

    // Translated to the openai fake's chat: its cached prompt tokens are
    // cache reads, outside `input_tokens`, as Anthropic reports them.
    let r = gw.post("/v1/messages", body("chat", false)).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 8, "output_tokens": 5, "cache_read_input_tokens": 4})
    );
    assert_eq!(counted(&gw, "chat", "oai").await, CHAT);
    let events = data_events(gw.post("/v1/messages", body("chat", true)).await).await;
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 4);
    counted_eventually(&gw, "chat", "oai", times(CHAT, 2.0)).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_translated_provider_stream_is_counted_and_its_usage_stripped() {
    let Setup { gw, .. } = setup().await;
    let events = data_events(
        gw.post("/v1/chat/completions", chat_body("claude", true))
            .await,
    )
    .await;
    assert!(no_usage_field(&events), "{events:?}");
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there");
    counted_eventually(&gw, "claude", "claude", ANTHROPIC).await;

    let r = gw
        .post("/v1/chat/completions", chat_body("claude", false))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 30);
    assert_eq!(
        counted(&gw, "claude", "claude").await,
        times(ANTHROPIC, 2.0)
    );
    gw.stop().await;
}
