//! Tokens and money per key on one gateway (the in-memory state backend),
//! over real HTTP against an OpenAI fake that reports fixed usage (17
//! tokens per chat: 12 prompt of which 4 cached, 5 completion):
//! - prices turn usage into exact `switchyard_cost_usd_total`, and a dollar
//!   budget refuses with 429 `budget_exceeded` once spent;
//! - a key's TPM limit checks the estimate (prompt size + `max_tokens`)
//!   before sending and charges the real usage after;
//! - a route's TPM limit refuses with 429 and `Retry-After`;
//! - a provider's TPM limit sends the request to the next target instead.

use crate::common;

use common::*;
use serde_json::{Value, json};

const TEAM: &str = "sk-team-1234567890abcdef1234567890";
const TPM_KEY: &str = "sk-tpm-abcdef1234567890abcdef1234";
/// Tokens the fake charges per chat call.
const PER_CALL: f64 = 17.0;

/// Routes `chat` (provider `small`, TPM 100, then `big`), `narrow` (route
/// TPM 100); keys `team` ($0.05 a month at $1000/$500/$2000 per million
/// input/cached/output tokens: $0.02 a call) and `tpm` (100 TPM; its large
/// token budget is there so the test can see each settlement land).
async fn setup() -> (TestGateway, FakeUpstream, FakeUpstream) {
    let small = common::usage::openai().await;
    let big = common::usage::openai().await;
    let yaml = format!(
        "providers:
  small:
    kind: openai
    base_url: {}
    api_key_env: TEST_UPSTREAM_KEY
    tpm: 100
  big:
    kind: openai
    base_url: {}
    api_key_env: TEST_UPSTREAM_KEY
routes:
  chat:
    strategy: failover
    targets: [{{provider: small, model: gpt-up}}, {{provider: big, model: gpt-up}}]
  narrow:
    targets: [{{provider: big, model: gpt-up}}]
    tpm: 100
prices:
  gpt-up: {{input: 1000, cached: 500, output: 2000}}
keys:
  team:
    secret_env: TEAM_KEY
    budget: {{period: month, usd: 0.05}}
  tpm:
    secret_env: TPM_KEY
    tpm: 100
    budget: {{period: day, tokens: 1000000}}
",
        small.base_url(),
        big.base_url()
    );
    let gw = gateway_env(&yaml, &[("TEAM_KEY", TEAM), ("TPM_KEY", TPM_KEY)]).await;
    (gw, small, big)
}

fn chat_body(route: &str, max_tokens: u64) -> Value {
    json!({"model": route, "messages": [{"role": "user", "content": "hi"}],
           "max_tokens": max_tokens})
}

async fn chat_as(gw: &TestGateway, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .json(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

/// Waits until `gauge` reads `value` (settlements land after the body).
async fn gauge_reaches(gw: &TestGateway, gauge: &str, value: f64) {
    eventually(async || (gw.metric(gauge).await - value).abs() < 1e-9).await;
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn prices_give_exact_costs_and_a_dollar_budget_refuses_once_spent() {
    let (gw, _small, big) = setup().await;
    let remaining = "switchyard_budget_remaining{key=\"team\",unit=\"usd\"}";
    let body = chat_body("narrow", 1);
    for n in 1..=3 {
        let r = chat_as(&gw, Some(TEAM), &body).await;
        assert_eq!(r.status(), 200, "call {n}");
        r.bytes().await.unwrap();
        // $0.05 - $0.02 per call, never below zero.
        gauge_reaches(&gw, remaining, (0.05 - 0.02 * n as f64).max(0.0)).await;
    }
    let cost = "switchyard_cost_usd_total{key=\"team\",provider=\"big\",route=\"narrow\"}";
    assert!((gw.metric(cost).await - 0.06).abs() < 1e-9);
    let tokens =
        "switchyard_tokens_total{key=\"team\",kind=\"cached\",provider=\"big\",route=\"narrow\"}";
    assert_eq!(gw.metric(tokens).await, 12.0, "4 cached tokens a call");

    // $0.06 spent of $0.05: refused before anything goes upstream.
    let calls = big.calls();
    let r = chat_as(&gw, Some(TEAM), &body).await;
    assert_eq!(r.status(), 429);
    let wait = retry_after(&r);
    assert!((1..=31 * 86_400 + 1).contains(&wait), "{wait}");
    assert_eq!(r.headers()["x-should-retry"], "false");
    let e = error_of(r).await;
    assert_eq!(e["code"], "budget_exceeded");
    assert_eq!(e["type"], "rate_limit_error", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("key `team`") && msg.contains("$0.05 this month"),
        "{msg}"
    );
    assert!(!msg.contains(TEAM), "the secret never appears");
    assert_eq!(big.calls(), calls);
    // Another key, and callers without one, are not affected.
    assert_eq!(chat_as(&gw, Some(TPM_KEY), &body).await.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_key_tpm_limit_checks_the_estimate_first_and_charges_real_usage_after() {
    let (gw, _small, _big) = setup().await;
    let remaining = "switchyard_budget_remaining{key=\"tpm\",unit=\"tokens\"}";
    let body = chat_body("narrow", 60);
    // What admission reserves: a token per 4 bytes of request, plus
    // max_tokens. Two of these fit 100 only because each is charged its
    // real 17 afterwards; a third does not fit what is left (66).
    let estimate = serde_json::to_vec(&body).unwrap().len().div_ceil(4) as f64 + 60.0;
    assert!(estimate > 66.0 + 5.0 && estimate <= 83.0, "{estimate}");
    for n in 1..=2 {
        let r = chat_as(&gw, Some(TPM_KEY), &body).await;
        assert_eq!(r.status(), 200, "call {n}");
        r.bytes().await.unwrap();
        gauge_reaches(&gw, remaining, 1_000_000.0 - PER_CALL * n as f64).await;
    }
    let r = chat_as(&gw, Some(TPM_KEY), &body).await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(&r) >= 1);
    let e = error_of(r).await;
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("key `tpm`: 100 tokens per minute"),
        "{e}"
    );
    assert_eq!(
        gw.metric("switchyard_rate_limited_total{scope=\"key_tpm\"}")
            .await,
        1.0
    );
    // A smaller request still fits what is left.
    let small = chat_body("narrow", 1);
    assert_eq!(chat_as(&gw, Some(TPM_KEY), &small).await.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_route_tpm_limit_refuses_with_retry_after() {
    let (gw, _small, big) = setup().await;
    // One request may reserve the whole minute (its estimate is capped at
    // the limit, so it is not refused forever); the next is refused
    // whether or not the first has been settled yet (100 - 17 < 100).
    let body = chat_body("narrow", 500);
    let r = chat_as(&gw, None, &body).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = chat_as(&gw, None, &body).await;
    assert_eq!(r.status(), 429);
    let wait = retry_after(&r);
    assert!((1..=60).contains(&wait), "{wait}");
    let e = error_of(r).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("model `narrow`: 100 tokens per minute"),
        "{e}"
    );
    assert_eq!(big.calls(), 1);
    assert_eq!(
        gw.metric("switchyard_rate_limited_total{scope=\"route_tpm\"}")
            .await,
        1.0
    );
    // Other routes are not limited by it.
    assert_eq!(
        chat_as(&gw, None, &chat_body("chat", 1)).await.status(),
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_provider_tpm_limit_sends_the_request_to_the_next_target() {
    let (gw, small, big) = setup().await;
    let remaining = "switchyard_budget_remaining{key=\"tpm\",unit=\"tokens\"}";
    let body = chat_body("chat", 500);
    // The first call holds its small estimate at `small` while it is made
    // and is charged its real 17 when settled.
    let r = chat_as(&gw, Some(TPM_KEY), &chat_body("chat", 1)).await;
    assert_eq!(r.headers()["x-switchyard-provider"], "small");
    r.bytes().await.unwrap();
    gauge_reaches(&gw, remaining, 1_000_000.0 - PER_CALL).await;
    // 83 left at `small`: a request estimated at 100 goes to `big`.
    let r = chat_as(&gw, None, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "big");
    assert_eq!((small.calls(), big.calls()), (1, 1));
    assert_eq!(
        gw.metric("switchyard_rate_limited_total{scope=\"provider_tpm\"}")
            .await,
        1.0
    );
    // A small one still fits `small`.
    let r = chat_as(&gw, None, &chat_body("chat", 1)).await;
    assert_eq!(r.headers()["x-switchyard-provider"], "small");
    gw.stop().await;
}
