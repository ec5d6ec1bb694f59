//! Budgets that hold: admission reserves each request's estimate (tokens,
//! and dollars at the route's dearest price) until it is settled, so
//! concurrent requests overshoot a budget by at most one estimate; and a
//! Redis outage under `fail_open` does not grant a spent budget again on
//! any replica (each keeps the last spend it heard from Redis).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::redis::RedisServer;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

const TOK_KEY: &str = "sk-budget-tok-1111111111111111111111";
const USD_KEY: &str = "sk-budget-usd-2222222222222222222222";
const FREE_KEY: &str = "sk-budget-free-333333333333333333333";
/// What every answer of the fake costs: 12 prompt and 10 completion tokens.
const SPENT: u64 = 22;

/// A chat upstream that answers after `delay` (so requests overlap), each
/// answer costing [`SPENT`] tokens; counts the calls.
async fn upstream(delay: Duration) -> (FakeUpstream, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let up = FakeUpstream::start(move |s, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut v = chat_reply(&s.body, "fake");
            v["usage"] =
                json!({"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": SPENT});
            Reply::After(delay, Box::new(Reply::Json(200, v)))
        }
    })
    .await;
    (up, calls)
}

fn policy(up: &FakeUpstream, state: &str) -> String {
    format!(
        "{state}{}routes:\n  m:\n    targets: [{{provider: p0, model: small}}]\n\
prices:\n  small: {{input: 1, output: 2}}\n\
keys:\n  tok:\n    secret_env: TOK_KEY\n    budget: {{period: day, tokens: 60}}\n\
\x20 usd:\n    secret_env: USD_KEY\n    budget: {{period: day, usd: 0.0001}}\n\
\x20 free:\n    secret_env: FREE_KEY\n",
        providers_yaml(&[up], "")
    )
}

const ENV: [(&str, &str); 3] = [
    ("TOK_KEY", TOK_KEY),
    ("USD_KEY", USD_KEY),
    ("FREE_KEY", FREE_KEY),
];

fn body(i: usize) -> Value {
    json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": format!("question {i:03}")}]})
}

/// The estimate admission reserves for [`body`]: a token per four bytes of
/// request plus the output bound.
fn estimate() -> u64 {
    (body(0).to_string().len() as u64).div_ceil(4) + 10
}

async fn chat_as(gw: &TestGateway, key: &str, i: usize) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .timeout(Duration::from_secs(10))
        .json(&body(i))
        .send()
        .await
        .expect("no request may hang");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `gw` has settled `key`'s spend to `spent` (in its unit, of
/// `limit`): settlements land after the answer, on their own task.
async fn settled(gw: &TestGateway, key: &str, unit: &str, limit: u64, spent: u64) {
    let sample = format!(r#"switchyard_budget_remaining{{key="{key}",unit="{unit}"}}"#);
    let mut left = limit.saturating_sub(spent) as f64;
    if unit == "usd" {
        left /= 1e6;
    }
    eventually(async || (gw.metric(&sample).await - left).abs() < 1e-9).await;
}

/// Tokens `key` spent, as counted from the answers.
async fn spent(gw: &TestGateway, key: &str) -> u64 {
    let mut total = 0.0;
    for kind in ["prompt", "completion"] {
        let sample = format!(
            r#"switchyard_tokens_total{{key="{key}",kind="{kind}",provider="p0",route="m"}}"#
        );
        total += gw.metric(&sample).await;
    }
    total as u64
}

#[tokio::test]
async fn fifty_concurrent_requests_overshoot_a_budget_by_at_most_one_estimate() {
    let (up, calls) = upstream(Duration::from_millis(300)).await;
    let gw = gateway_env(&policy(&up, ""), &ENV).await;
    let estimate = estimate();
    assert!(SPENT <= estimate, "the fake spends within the estimate");
    for (alias, key, unit, limit, per_request, reserved) in [
        ("tok", TOK_KEY, "tokens", 60u64, SPENT, estimate),
        // $0.0001 = 100 µ$; an answer costs 12 * $1 + 10 * $2 per 1M tokens.
        ("usd", USD_KEY, "usd", 100, 32, (estimate - 10) + 2 * 10),
    ] {
        let before = calls.load(Ordering::SeqCst);
        let all: Vec<(u16, Value)> = futures_util::stream::iter(0..50)
            .map(|i| chat_as(&gw, key, i))
            .buffer_unordered(50)
            .collect()
            .await;
        let served = all.iter().filter(|(s, _)| *s == 200).count() as u64;
        let refused: Vec<&Value> = all
            .iter()
            .filter(|(s, _)| *s == 429)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            served + refused.len() as u64,
            50,
            "{alias}: only 200s and 429s"
        );
        assert!(
            refused
                .iter()
                .all(|v| v["error"]["code"] == "budget_exceeded")
        );
        // Those in flight together: while the reservations stay under the
        // limit, and one more.
        assert_eq!(served, limit.div_ceil(reserved), "{alias}");
        assert!(
            served * per_request <= limit + reserved,
            "{alias}: {served} served"
        );
        assert_eq!(calls.load(Ordering::SeqCst) - before, served as usize);
        // Settled: the budget is spent on until its real spend reaches it.
        let mut total = served;
        loop {
            settled(&gw, alias, unit, limit, total * per_request).await;
            let (status, v) = chat_as(&gw, key, 100 + total as usize).await;
            if status == 429 {
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
                break;
            }
            assert_eq!(status, 200, "{v}");
            total += 1;
            assert!(total < 20, "{alias}: never refused");
        }
        assert!(
            total * per_request >= limit && total * per_request <= limit + reserved,
            "{alias}: {total} answers of {per_request} on {limit}"
        );
    }
    let tokens = spent(&gw, "tok").await;
    assert!((60..=60 + estimate).contains(&tokens), "{tokens}");
    // No budget, no reservation: every one is served.
    let free: Vec<(u16, Value)> = futures_util::stream::iter(0..20)
        .map(|i| chat_as(&gw, FREE_KEY, i))
        .buffer_unordered(20)
        .collect()
        .await;
    assert!(free.iter().all(|(s, _)| *s == 200));
    gw.stop().await;
}

#[tokio::test]
async fn a_redis_outage_under_fail_open_does_not_grant_a_spent_budget_again() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (up, _) = upstream(Duration::ZERO).await;
    let state =
        "state:\n  backend: redis\n  url_env: REDIS_URL\n  on_error: fail_open\n  timeout: 200ms\n";
    let url = redis.url();
    let env = [ENV[0], ENV[1], ENV[2], ("REDIS_URL", url.as_str())];
    let a = gateway_env(&policy(&up, state), &env).await;
    let b = gateway_env(&policy(&up, state), &env).await;
    // Spend the 60-token budget through both replicas, one after the other,
    // until each has been refused (each has heard the spend from Redis).
    let mut refused = [false, false];
    let mut served = 0;
    for i in 0..20 {
        let side = i % 2;
        let gw = [&a, &b][side];
        let (status, v) = chat_as(gw, TOK_KEY, i).await;
        match status {
            200 => {
                served += 1;
                settled(gw, "tok", "tokens", 60, served * SPENT).await;
            }
            429 => {
                assert_eq!(v["error"]["code"], "budget_exceeded");
                refused[side] = true;
            }
            s => panic!("{s} {v}"),
        }
        if refused == [true, true] {
            break;
        }
    }
    assert_eq!(refused, [true, true]);
    assert!(
        served * SPENT >= 60 && served * SPENT <= 60 + estimate(),
        "{served}"
    );
    // A key that spent some of its budget, last through b: b last heard
    // 64 µ$ of its 100.
    for (i, gw) in [&a, &b].into_iter().enumerate() {
        assert_eq!(chat_as(gw, USD_KEY, 50 + i).await.0, 200);
        settled(gw, "usd", "usd", 100, 32 * (i as u64 + 1)).await;
    }

    redis.kill().await;
    for (name, gw) in [("a", &a), ("b", &b)] {
        for i in 0..3 {
            let (status, v) = chat_as(gw, TOK_KEY, 60 + i).await;
            assert_eq!(status, 429, "{name} granted a spent budget again: {v}");
            assert_eq!(v["error"]["code"], "budget_exceeded");
        }
        // fail_open: a key without a budget is served meanwhile.
        assert_eq!(chat_as(gw, FREE_KEY, 70).await.0, 200, "{name}");
    }
    // The other key spends on from b's last known spend (64 µ$), not from
    // zero: two answers of 32 µ$ (four from zero).
    let mut more = 0;
    while chat_as(&b, USD_KEY, 80 + more).await.0 == 200 {
        more += 1;
        assert!(more <= 2, "the budget started over");
        settled(&b, "usd", "usd", 100, 64 + 32 * more as u64).await;
    }
    assert_eq!(more, 2);
    assert_eq!(a.metric("switchyard_state_up").await, 0.0);
    a.stop().await;
    b.stop().await;
}
