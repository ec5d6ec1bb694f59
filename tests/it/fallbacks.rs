//! Fallbacks by error class over real HTTP: a context-window error goes to
//! the long-context target, a request estimated over a target's
//! `context_window` never reaches it, content-policy refusals and spent
//! quotas (also inside a 200) move to their fallbacks, each recognised per
//! provider kind from what the provider's API sends; other 4xx still go
//! back to the client.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// An upstream that refuses every request with `status` and `body`.
async fn refusing(status: u16, body: Value) -> FakeUpstream {
    FakeUpstream::start(move |_, _| {
        let body = body.clone();
        async move { Reply::Json(status, body) }
    })
    .await
}

fn openai_error(code: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": "messages", "code": code}})
}

fn provider(name: &str, up: &FakeUpstream) -> String {
    format!(
        "  {name}:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n",
        up.base_url()
    )
}

#[tokio::test]
async fn a_context_window_error_falls_back_to_the_long_context_target() {
    let short = refusing(
        400,
        openai_error(
            "context_length_exceeded",
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        ),
    )
    .await;
    let long = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "providers:\n{}{}routes:\n  r:\n    targets: [{{provider: short, model: small}}]\n    \
         fallbacks:\n      context_window: {{targets: [{{provider: long, model: big}}]}}\n  \
         bare:\n    targets: [{{provider: short, model: small}}]\n",
        provider("short", &short),
        provider("long", &long)
    ))
    .await;
    let r = gw.chat("r", "a long conversation").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "long");
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model"], "big");
    assert_eq!((short.calls(), long.calls()), (1, 1));
    // Without a fallback, the upstream's 400 goes back as before.
    let r = gw.chat("bare", "a long conversation").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await["code"], "context_length_exceeded");
    assert_eq!(short.calls(), 2, "not retried");
    gw.stop().await;
}

#[tokio::test]
async fn a_request_estimated_over_a_window_never_reaches_that_target() {
    let short = FakeUpstream::openai().await;
    let long = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "providers:\n{}{}routes:\n  r:\n    targets:\n      - {{provider: short, context_window: 1000}}\n      \
         - {{provider: long, context_window: 100000}}\n  \
         only-short:\n    targets: [{{provider: short, context_window: 1000}}]\n    \
         fallbacks:\n      context_window: {{route: r}}\n  \
         tiny:\n    targets: [{{provider: short, context_window: 1000}}]\n",
        provider("short", &short),
        provider("long", &long)
    ))
    .await;
    let big = "word ".repeat(2000); // ~10 kB: about 2500 tokens by the estimate
    let r = gw.chat("r", "hi").await;
    assert_eq!(
        r.headers()["x-switchyard-provider"],
        "short",
        "a small one fits"
    );
    for route in ["r", "only-short"] {
        let r = gw.chat(route, &big).await;
        assert_eq!(r.status(), 200, "{route}");
        assert_eq!(r.headers()["x-switchyard-provider"], "long", "{route}");
    }
    // An output bound counts too.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "max_tokens": 5000, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.headers()["x-switchyard-provider"], "long");
    assert_eq!(
        short.calls(),
        1,
        "only the small request reached the short target"
    );
    // Nowhere to go: the client learns why, and nothing was sent.
    let r = gw.chat("tiny", &big).await;
    assert_eq!(r.status(), 400);
    let e = error_of(r).await;
    assert_eq!(e["code"], "context_length_exceeded");
    assert!(
        e["message"].as_str().unwrap().contains("context window"),
        "{e}"
    );
    assert_eq!(short.calls(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn each_kind_s_context_window_error_is_recognised() {
    // Anthropic: a 400 invalid_request_error saying the prompt is too long.
    let anthropic = refusing(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error",
               "message": "prompt is too long: 204842 tokens > 200000 maximum"},
               "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}),
    )
    .await;
    // Gemini: INVALID_ARGUMENT, the input over the model's token limit.
    let gemini = refusing(
        400,
        json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
               "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}}),
    )
    .await;
    // vLLM (OpenAI-compatible): the window only in words.
    let vllm = refusing(
        400,
        json!({"object": "error", "message": "ignored", "type": "BadRequestError", "code": 400,
               "error": {"message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
                         "type": "BadRequestError", "code": 400}}),
    )
    .await;
    let long = FakeUpstream::openai().await;
    let yaml = format!(
        "providers:\n  anthropic:\n    kind: anthropic\n    base_url: http://{}\n    api_key_env: TEST_UPSTREAM_KEY\n  \
         gemini:\n    kind: gemini\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n{}{}routes:\n",
        anthropic.addr,
        gemini.base_url(),
        provider("vllm", &vllm),
        provider("long", &long)
    );
    let mut yaml = yaml;
    for p in ["anthropic", "gemini", "vllm"] {
        yaml.push_str(&format!(
            "  {p}:\n    targets: [{{provider: {p}, model: m}}]\n    \
             fallbacks: {{context_window: {{targets: [{{provider: long}}]}}}}\n"
        ));
    }
    let gw = gateway(&yaml).await;
    for p in ["anthropic", "gemini", "vllm"] {
        let r = gw.chat(p, "hi").await;
        assert_eq!(r.status(), 200, "{p}: {:?}", r.text().await);
        assert_eq!(r.headers()["x-switchyard-provider"], "long", "{p}");
    }
    assert_eq!(
        (
            anthropic.calls(),
            gemini.calls(),
            vllm.calls(),
            long.calls()
        ),
        (1, 1, 1, 3)
    );
    gw.stop().await;
}

#[tokio::test]
async fn content_policy_and_quota_errors_move_to_their_fallbacks() {
    // Azure's content filter refuses the prompt with a 400.
    let filtered = refusing(
        400,
        json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
               "type": null, "param": "prompt", "code": "content_filter", "status": 400,
               "innererror": {"code": "ResponsibleAIPolicyViolation",
                              "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}}),
    )
    .await;
    // Gemini blocks the prompt inside a 200.
    let blocked = refusing(
        200,
        json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
               "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}),
    )
    .await;
    // OpenAI: a spent quota is a 429 `insufficient_quota`; a proxy says it in a 200.
    let spent = refusing(
        429,
        json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
               "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
    )
    .await;
    let spent_200 = refusing(
        200,
        json!({"error": {"message": "Insufficient account balance", "code": "insufficient_quota"}}),
    )
    .await;
    let spare = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "providers:\n  azure:\n    kind: azure\n    endpoint: http://{}\n    api_key_env: TEST_UPSTREAM_KEY\n  \
         gemini:\n    kind: gemini\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n{}{}{}\
         routes:\n  azure:\n    targets: [{{provider: azure, model: gpt-4o}}]\n    \
         fallbacks: {{content_policy: {{targets: [{{provider: spare}}]}}}}\n  \
         gemini:\n    targets: [{{provider: gemini, model: gemini-2.5-flash}}]\n    \
         fallbacks: {{content_policy: {{targets: [{{provider: spare}}]}}}}\n  \
         gemini-bare:\n    targets: [{{provider: gemini, model: gemini-2.5-flash}}]\n  \
         quota:\n    retry: {{max_attempts: 3, initial_backoff: 1ms, max_backoff: 1ms}}\n    \
         targets: [{{provider: spent}}, {{provider: spent-200}}]\n    \
         fallbacks: {{quota: {{targets: [{{provider: spare}}]}}}}\n",
        filtered.addr,
        blocked.base_url(),
        provider("spent", &spent),
        provider("spent-200", &spent_200),
        provider("spare", &spare),
    ))
    .await;
    for route in ["azure", "gemini"] {
        let r = gw.chat(route, "something the filter dislikes").await;
        assert_eq!(r.status(), 200, "{route}");
        assert_eq!(r.headers()["x-switchyard-provider"], "spare", "{route}");
    }
    // Without a fallback, Gemini's blocked prompt is a 400 content_filter.
    let r = gw
        .chat("gemini-bare", "something the filter dislikes")
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await["code"], "content_filter");
    // A spent quota is not retried: both spent targets once, then the fallback.
    let r = gw.chat("quota", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "spare");
    assert_eq!((spent.calls(), spent_200.calls()), (1, 1));
    assert_eq!(
        (filtered.calls(), blocked.calls(), spare.calls()),
        (1, 2, 3)
    );
    gw.stop().await;
}

#[tokio::test]
async fn other_client_errors_are_still_passed_back() {
    let picky = refusing(
        400,
        openai_error("invalid_value", "max_tokens is too large"),
    )
    .await;
    let spare = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "providers:\n{}{}routes:\n  r:\n    targets: [{{provider: picky}}, {{provider: spare}}]\n    \
         fallbacks:\n      context_window: {{targets: [{{provider: spare}}]}}\n      \
         content_policy: {{targets: [{{provider: spare}}]}}\n      quota: {{targets: [{{provider: spare}}]}}\n",
        provider("picky", &picky),
        provider("spare", &spare)
    ))
    .await;
    let r = gw.chat("r", "hi").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await["code"], "invalid_value");
    assert_eq!((picky.calls(), spare.calls()), (1, 0));
    gw.stop().await;
}
