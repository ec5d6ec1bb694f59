//! Two gateways sharing one real redis-server: limits and budgets are
//! global, the cache is shared, a stateful Responses conversation started
//! on one continues on the other, and a Redis outage neither hangs nor
//! loses anything, under both failure policies.

use crate::common;

use std::time::Duration;

use common::redis::RedisServer;
use common::*;
use serde_json::{Value, json};
use tokio::time::Instant;

const RPM_KEY: &str = "sk-rpm-1111111111111111111111111111";
const TOK_KEY: &str = "sk-tok-2222222222222222222222222222";
const TPM_KEY: &str = "sk-tpm-3333333333333333333333333333";
const SLOW_KEY: &str = "sk-slow-444444444444444444444444444";
const RPM: u64 = 120;

fn policy(on_error: &str) -> String {
    format!(
        "state:\n  backend: redis\n  url_env: REDIS_URL\n  on_error: {on_error}\n  timeout: 200ms\n\
providers:\n  m:\n    kind: mock\n\
routes:\n  chat:\n    targets: [{{provider: m, model: small}}]\n    cache: {{enabled: true}}\n  embed:\n    targets: [{{provider: m, model: e}}]\n    cache: {{enabled: true}}\n\
keys:\n  rpm:\n    secret_env: RPM_KEY\n    rpm: {RPM}\n  tok:\n    secret_env: TOK_KEY\n    budget: {{period: day, tokens: 60}}\n  tpm:\n    secret_env: TPM_KEY\n    tpm: 100\n  slow:\n    secret_env: SLOW_KEY\n    rpm: 3\n"
    )
}

/// Two gateways on one Redis (or `None`: redis-server missing, skipped).
async fn pair(on_error: &str) -> Option<(RedisServer, TestGateway, TestGateway)> {
    let redis = RedisServer::start().await?;
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("RPM_KEY", RPM_KEY),
        ("TOK_KEY", TOK_KEY),
        ("TPM_KEY", TPM_KEY),
        ("SLOW_KEY", SLOW_KEY),
    ];
    let a = gateway_env(&policy(on_error), &env).await;
    let b = gateway_env(&policy(on_error), &env).await;
    Some((redis, a, b))
}

async fn chat_as(gw: &TestGateway, key: &str, text: &str) -> reqwest::Response {
    gw.http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .timeout(Duration::from_secs(5))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .expect("no request may hang or fail at the transport")
}

#[tokio::test]
async fn a_global_rpm_limit_holds_within_two_percent_across_two_replicas() {
    let Some((_redis, a, b)) = pair("fail_open").await else {
        return;
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Three times the limit, alternating replicas, 8 at a time per replica.
    for i in 0..(3 * RPM) {
        let gw = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let http = a.http.clone();
        tasks.push(async move {
            let r = http
                .post(format!("{gw}/v1/chat/completions"))
                .bearer_auth(RPM_KEY)
                .header("cache-control", "no-cache")
                .json(&json!({"model": "chat", "messages": [{"role": "user", "content": format!("q{i}")}]}))
                .send()
                .await
                .unwrap();
            (i % 2, r.status().as_u16(), r.headers().get("retry-after").cloned())
        });
    }
    let results: Vec<(u64, u16, Option<http::HeaderValue>)> = futures_util::stream::iter(tasks)
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = results.iter().filter(|r| r.1 == 200).count() as f64;
    let refused: Vec<_> = results.iter().filter(|r| r.1 == 429).collect();
    assert_eq!(
        admitted as usize + refused.len(),
        results.len(),
        "only 200s and 429s"
    );
    assert!(
        refused.iter().all(|r| r.2.is_some()),
        "every 429 has Retry-After"
    );
    for side in [0, 1] {
        assert!(
            results.iter().any(|r| r.0 == side && r.1 == 200),
            "both replicas served"
        );
    }
    // A bucket of RPM, refilled at RPM per minute while the test ran.
    let limit = RPM as f64 + RPM as f64 * elapsed / 60.0;
    eprintln!(
        "admitted {admitted} of {} across two replicas in {elapsed:.2}s; limit {limit:.1}",
        results.len()
    );
    assert!(
        (admitted - limit).abs() <= 0.02 * limit + 1.0,
        "admitted {admitted} across both replicas, limit {limit:.1} (elapsed {elapsed:.2}s)"
    );
    // Without the shared store each replica would have admitted its own RPM.
    assert!(admitted < 1.5 * RPM as f64);
    a.stop().await;
    b.stop().await;
}

use futures_util::StreamExt;

#[tokio::test]
async fn a_budget_spent_through_one_replica_is_refused_by_the_other() {
    let Some((_redis, a, b)) = pair("fail_open").await else {
        return;
    };
    // Spend the 60-token day budget through a (each answer costs tokens).
    let remaining = "switchyard_budget_remaining{key=\"tok\",unit=\"tokens\"}";
    let mut left = 60.0;
    let mut spent = 0;
    while left > 0.0 && spent < 20 {
        let r = chat_as(&a, TOK_KEY, &format!("spend {spent}")).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        spent += 1;
        // The charge lands after the body: wait for the gauge to move.
        let before = left;
        eventually(async || {
            let m = a.metrics().await;
            m.contains(remaining) && a.metric(remaining).await < before
        })
        .await;
        left = a.metric(remaining).await;
    }
    assert!(spent >= 2 && left <= 0.0, "{spent} calls, {left} left");
    let r = chat_as(&b, TOK_KEY, "now through b").await;
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_401).contains(&retry_after), "{retry_after}");
    assert_eq!(r.headers()["x-should-retry"], "false");
    let e = error_of(r).await;
    assert_eq!(e["code"], "budget_exceeded");
    assert!(e["message"].as_str().unwrap().contains("key `tok`"), "{e}");
    // Other keys are not affected.
    assert_eq!(chat_as(&b, RPM_KEY, "fine").await.status(), 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_key_tpm_limit_taken_through_one_replica_is_refused_by_the_other() {
    let Some((_redis, a, b)) = pair("fail_open").await else {
        return;
    };
    // max_tokens 500: the estimate is capped at the key's 100 TPM, so this
    // one request holds the whole minute until it is settled (to its real
    // usage, well under 100: still too little left for another such one).
    let body = json!({"model": "chat", "max_tokens": 500,
                      "messages": [{"role": "user", "content": "a long answer please"}]});
    let send = |gw: &TestGateway| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(TPM_KEY)
            .header("cache-control", "no-cache")
            .json(&body)
            .send()
    };
    let r = send(&a).await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = send(&b).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let e = error_of(r).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("key `tpm`: 100 tokens per minute"),
        "{e}"
    );
    assert_eq!(
        b.metric("switchyard_rate_limited_total{scope=\"key_tpm\"}")
            .await,
        1.0
    );
    // Other keys are not affected.
    assert_eq!(chat_as(&b, RPM_KEY, "fine").await.status(), 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_entry_cached_by_one_replica_is_a_hit_on_the_other_in_one_round_trip() {
    let Some((redis, a, b)) = pair("fail_open").await else {
        return;
    };
    let r = a.chat("chat", "shared question").await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let first: Value = r.json().await.unwrap();
    let r = b.chat("chat", "shared question").await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    // Embeddings: per item, the whole batch looked up in one MGET.
    let r = a.embed("embed", json!(["x", "y"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let mgets = redis.command_calls("mget").await;
    let gets = redis.command_calls("get").await;
    let r = b.embed("embed", json!(["x", "y", "z", "x"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "partial");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 4);
    assert_eq!(v["data"][0]["embedding"], v["data"][3]["embedding"]);
    assert_eq!(redis.command_calls("mget").await, mgets + 1);
    assert_eq!(redis.command_calls("get").await, gets);
    let r = a.embed("embed", json!(["z"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn redis_killed_mid_run_fail_open_serves_everything_and_catches_up() {
    let Some((mut redis, a, b)) = pair("fail_open").await else {
        return;
    };
    assert_eq!(chat_as(&a, RPM_KEY, "before").await.status(), 200);
    redis.kill().await;
    let started = Instant::now();
    for i in 0..20 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = chat_as(gw, RPM_KEY, &format!("during {i}")).await;
        assert_eq!(r.status(), 200, "fail_open serves while Redis is down");
    }
    // Every call was bounded by the store timeout, none hung.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        a.metric("switchyard_state_errors_total{op=\"admit\"}")
            .await
            >= 1.0
    );
    assert_eq!(a.metric("switchyard_state_up").await, 0.0);
    redis.restart().await;
    eventually(async || {
        chat_as(&a, RPM_KEY, "after").await.status() == 200
            && a.metric("switchyard_state_up").await == 1.0
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn requests_a_replica_admitted_during_an_outage_count_against_the_shared_rpm_after_it() {
    let Some((mut redis, a, b)) = pair("fail_open").await else {
        return;
    };
    redis.kill().await;
    // `slow` may send 3 a minute (a token back every 20 s): replica a
    // spends its local bucket while Redis is away.
    for i in 0..3 {
        let r = chat_as(&a, SLOW_KEY, &format!("during {i}")).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(chat_as(&a, SLOW_KEY, "a fourth").await.status(), 429);
    redis.restart().await;
    // The restarted Redis has no bucket (a full one): a's first admission
    // that reaches it is granted, then a replays its three tokens.
    eventually(async || chat_as(&a, SLOW_KEY, "after").await.status() == 200).await;
    let mut c = redis.client().await;
    eventually(async || {
        let level: Option<f64> = ::redis::cmd("HGET")
            .arg("switchyard:b:rpm:k:slow")
            .arg("l")
            .query_async(&mut c)
            .await
            .unwrap();
        level.is_some_and(|l| l < 0.0)
    })
    .await;
    // So replica b, which saw none of it, refuses once it is back on Redis
    // (a call of another key's that reached it says so): the key sent 4 in
    // the last minute (without the replay b would grant 2 more).
    eventually(async || {
        chat_as(&b, RPM_KEY, "b reconnected").await.status() == 200
            && b.metric("switchyard_state_up").await == 1.0
    })
    .await;
    let r = chat_as(&b, SLOW_KEY, "on b").await;
    assert_eq!(r.status(), 429);
    assert!(
        error_of(r).await["message"]
            .as_str()
            .unwrap()
            .contains("key `slow`: 3 requests per minute")
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn redis_killed_mid_run_fail_closed_refuses_limited_calls_at_once_and_recovers() {
    let Some((mut redis, a, b)) = pair("fail_closed").await else {
        return;
    };
    assert_eq!(chat_as(&a, RPM_KEY, "before").await.status(), 200);
    redis.kill().await;
    for gw in [&a, &b] {
        let started = Instant::now();
        let r = chat_as(gw, RPM_KEY, "during").await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.status(), 503);
        let e = error_of(r).await;
        assert_eq!(e["code"], "state_unavailable");
        assert!(!e["message"].as_str().unwrap().contains("redis://"), "{e}");
        // A call no limit or budget applies to is still served (cache misses).
        let r = gw.chat("chat", "unlimited caller").await;
        assert_eq!(r.status(), 200);
    }
    redis.restart().await;
    eventually(async || chat_as(&b, RPM_KEY, "after").await.status() == 200).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_responses_conversation_started_on_one_replica_continues_on_the_other() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let fake = common::azure::FakeAzure::start(&["prod-4o"]).await;
    let yaml = format!(
        "state:\n  backend: redis\n  url_env: REDIS_URL\n  timeout: 200ms\n  responses: {{ttl: 10m}}\n\
keys:\n  ada:\n    secret_env: ADA_KEY\n\
providers:\n  az:\n    kind: azure\n    endpoint: {}\n    api_key_env: TEST_UPSTREAM_KEY\n    deployments:\n      gpt-4o: prod-4o\n\
routes:\n  r:\n    targets: [{{provider: az, model: gpt-4o}}]\n",
        fake.endpoint()
    );
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("ADA_KEY", "sk-ada-1")];
    let (a, b) = (
        gateway_env(&yaml, &env).await,
        gateway_env(&yaml, &env).await,
    );
    let call = |gw: &TestGateway, method: http::Method, path: String, body: Option<Value>| {
        let mut r = gw
            .http
            .request(method, format!("{}{path}", gw.base))
            .bearer_auth("sk-ada-1");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let first: Value = call(
        &a,
        http::Method::POST,
        "/v1/responses".into(),
        Some(json!({"model": "r", "input": "My name is Ada."})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = first["id"].as_str().unwrap().to_string();
    // Read on the other replica: the same object.
    let r = call(&b, http::Method::GET, format!("/v1/responses/{id}"), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    // Continued on the other replica, streamed: the target gets the
    // conversation started on the first.
    let r = call(
        &b,
        http::Method::POST,
        "/v1/responses".into(),
        Some(
            json!({"model": "r", "input": "What is my name?", "stream": true,
                    "previous_response_id": id}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");
    let sent = &fake.requests()[1].body["messages"];
    assert_eq!(
        sent,
        &json!([{"role": "user", "content": "My name is Ada."},
                {"role": "assistant", "content": "Echo: My name is Ada."},
                {"role": "user", "content": "What is my name?"}]),
        "{sent}"
    );
    // Kept in Redis with the TTL; deleted on one replica, gone on the other.
    let mut c = redis.client().await;
    let pttl: i64 = ::redis::cmd("PTTL")
        .arg(format!("switchyard:r:resp:k:ada:{id}"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 590_000 && pttl <= 600_000, "{pttl}");
    let r = call(
        &a,
        http::Method::DELETE,
        format!("/v1/responses/{id}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = call(&b, http::Method::GET, format!("/v1/responses/{id}"), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Redis down: a continuation is refused plainly (503), not answered
    // without its conversation.
    drop(c);
    redis.kill().await;
    let r = call(
        &a,
        http::Method::POST,
        "/v1/responses".into(),
        Some(json!({"model": "r", "input": "again", "previous_response_id": "resp_x"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await["code"], "state_unavailable");
    a.stop().await;
    b.stop().await;
}
