//! Response cache, single-flight and embedding fan-out over real HTTP.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn vectors(body: &Value) -> Vec<Vec<f32>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            serde_json::from_value(d["embedding"].clone()).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn chat_cache_hits_on_identical_requests_only() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}]\n    cache: {{ enabled: true, ttl: 1h }}\n  nocache:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&up], "")
    ))
    .await;
    let a =
        json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "same"}]});
    let r1 = gw.post("/v1/chat/completions", a.clone()).await;
    assert_eq!(r1.headers()["x-switchyard-cache"], "miss");
    let b1 = r1.text().await.unwrap();
    // Same request, keys in another order: still a hit, same body.
    let reordered: Value = serde_json::from_str(
        r#"{"messages": [{"content": "same", "role": "user"}], "temperature": 0, "model": "m"}"#,
    )
    .unwrap();
    let r2 = gw.post("/v1/chat/completions", reordered).await;
    assert_eq!(r2.headers()["x-switchyard-cache"], "hit");
    assert_eq!(r2.text().await.unwrap(), b1);
    assert_eq!(up.calls(), 1);
    // Any difference in the request is a different entry.
    let mut c = a.clone();
    c["temperature"] = json!(1);
    assert_eq!(
        gw.post("/v1/chat/completions", c).await.headers()["x-switchyard-cache"],
        "miss"
    );
    assert_eq!(up.calls(), 2);
    // Client opt-out.
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .header("cache-control", "no-cache")
        .json(&a)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-switchyard-cache").is_none());
    assert_eq!(up.calls(), 3);
    // Routes without caching never cache.
    gw.chat("nocache", "x").await;
    gw.chat("nocache", "x").await;
    assert_eq!(up.calls(), 5);
    assert_eq!(
        gw.metric(r#"switchyard_cache_hits_total{kind="chat",route="m"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_cache_misses_total{kind="chat",route="m"}"#)
            .await,
        2.0
    );
    assert!(gw.metric("switchyard_cache_bytes").await > 0.0);
    gw.stop().await;
}

#[tokio::test]
async fn errors_are_not_cached() {
    let up = FakeUpstream::start(|s, n| async move {
        if n == 1 {
            Reply::Json(
                400,
                json!({"error": {"message": "no", "type": "invalid_request_error"}}),
            )
        } else {
            Reply::Json(200, chat_reply(&s.body, "ok"))
        }
    })
    .await;
    let gw = gateway(&format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}]\n    cache: {{ enabled: true }}\n",
        providers_yaml(&[&up], "")
    ))
    .await;
    assert_eq!(gw.chat("m", "x").await.status(), 400);
    let r = gw.chat("m", "x").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    gw.stop().await;
}

#[tokio::test]
async fn identical_concurrent_requests_share_one_upstream_call() {
    let up = FakeUpstream::start(|s, _| async move {
        Reply::After(Duration::from_millis(300), Box::new(default_reply(&s)))
    })
    .await;
    let gw = gateway(&format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}]\n    cache: {{ enabled: true }}\n",
        providers_yaml(&[&up], "")
    ))
    .await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            gw.spawn_post(
                "/v1/chat/completions",
                json!({"model": "m", "messages": [{"role": "user", "content": "together"}]}),
            )
        })
        .collect();
    let mut bodies = vec![];
    let mut misses = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status(), 200);
        misses += (r.headers()["x-switchyard-cache"] == "miss") as usize;
        bodies.push(r.text().await.unwrap());
    }
    assert_eq!(up.calls(), 1, "one upstream call for 8 identical requests");
    assert_eq!(misses, 1);
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    // Embeddings too.
    let tasks: Vec<_> = (0..5)
        .map(|_| gw.spawn_post("/v1/embeddings", json!({"model": "m", "input": ["x", "y"]})))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status(), 200);
    }
    assert_eq!(up.calls(), 2);
    assert!(
        gw.metric(r#"switchyard_coalesced_requests_total{kind="chat",route="m"}"#)
            .await
            >= 7.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn embedding_cache_is_per_item_and_sends_only_misses() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}routes:\n  e:\n    targets: [{{provider: p0}}]\n    cache: {{ enabled: true, ttl: 1h }}\n",
        providers_yaml(&[&up], "")
    ))
    .await;
    let r = gw.embed("e", json!(["a", "b"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let r = gw.embed("e", json!(["b", "c", "a", "d", "c"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "partial");
    let body: Value = r.json().await.unwrap();
    let items = ["b", "c", "a", "d", "c"];
    let expected: Vec<Vec<f32>> = items.iter().map(|i| expected_vector(&json!(i))).collect();
    assert_eq!(vectors(&body), expected);
    let last = up.requests().pop().unwrap();
    assert_eq!(
        last.body["input"],
        json!(["c", "d"]),
        "only unique misses go upstream"
    );
    assert_eq!(
        body["usage"]["prompt_tokens"], 4,
        "usage counts what was sent upstream"
    );
    let r = gw.embed("e", json!(["d", "a"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    assert_eq!(up.calls(), 2);
    // Different parameters are different entries.
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "e", "input": ["a"], "dimensions": 3}),
        )
        .await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    // Per input: hits b,a then d,a; misses a,b then c,d,c then a(dimensions).
    assert_eq!(
        gw.metric(r#"switchyard_cache_hits_total{kind="embeddings",route="e"}"#)
            .await,
        4.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_cache_misses_total{kind="embeddings",route="e"}"#)
            .await,
        6.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn fan_out_splits_runs_in_parallel_and_reassembles_in_order() {
    let up = FakeUpstream::start(|s, _| async move {
        // Later sub-batches answer faster, so they finish out of order.
        let first = s.body["input"][0]
            .as_str()
            .unwrap_or("i00")
            .trim_start_matches('i')
            .parse::<u64>()
            .unwrap_or(0);
        Reply::After(
            Duration::from_millis(200 - first * 5),
            Box::new(default_reply(&s)),
        )
    })
    .await;
    let gw = gateway(&format!(
        "{}routes:\n  e:\n    targets: [{{provider: p0, max_batch_inputs: 4}}]\n    fanout: {{ max_concurrency: 3 }}\n",
        providers_yaml(&[&up], "")
    ))
    .await;
    let items: Vec<String> = (0..22).map(|i| format!("i{i:02}")).collect();
    let r = gw.embed("e", json!(items)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-switchyard-cache").is_none(),
        "cache off for this route"
    );
    let body: Value = r.json().await.unwrap();
    let expected: Vec<Vec<f32>> = items.iter().map(|i| expected_vector(&json!(i))).collect();
    assert_eq!(vectors(&body), expected);
    assert_eq!(body["usage"]["prompt_tokens"], 44);
    assert_eq!(body["usage"]["total_tokens"], 44);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 6, "22 inputs in sub-batches of 4");
    assert!(
        reqs.iter()
            .all(|s| s.body["input"].as_array().unwrap().len() <= 4)
    );
    let mut sent: Vec<String> = reqs
        .iter()
        .flat_map(|s| {
            s.body["input"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
        })
        .collect();
    sent.sort();
    assert_eq!(sent, items);
    assert_eq!(
        up.peak_concurrency(),
        3,
        "parallel, bounded by max_concurrency"
    );
    assert_eq!(
        gw.metric(r#"switchyard_fanout_sub_batches_total{route="e"}"#)
            .await,
        6.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_failing_sub_batch_fails_over_on_its_own() {
    // p0 fails every sub-batch containing "bad"; p1 serves it.
    let p0 = FakeUpstream::start(|s, _| async move {
        if s.body["input"].to_string().contains("bad") {
            Reply::Json(500, json!({}))
        } else {
            default_reply(&s)
        }
    })
    .await;
    let p1 = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}routes:\n  e:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n    retry: {{ max_attempts: 2, initial_backoff: 5ms }}\n",
        providers_yaml(&[&p0, &p1], "    max_batch_inputs: 2\n")
    ))
    .await;
    let items = ["a", "b", "c", "bad", "e", "f"];
    let r = gw.embed("e", json!(items)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let expected: Vec<Vec<f32>> = items.iter().map(|i| expected_vector(&json!(i))).collect();
    assert_eq!(vectors(&body), expected);
    assert_eq!(p1.calls(), 1, "only the failing sub-batch moved");
    assert_eq!(p1.requests()[0].body["input"], json!(["c", "bad"]));
    assert_eq!(
        p0.calls(),
        4,
        "two good sub-batches + two tries of the bad one"
    );
    gw.stop().await;
}

#[tokio::test]
async fn sub_batch_size_respects_every_targets_limit() {
    let a = FakeUpstream::openai().await;
    let b = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}routes:\n  e:\n    strategy: weighted\n    targets: [{{provider: p0, max_batch_inputs: 5}}, {{provider: p1, max_batch_inputs: 3}}]\n",
        providers_yaml(&[&a, &b], "")
    ))
    .await;
    let items: Vec<String> = (0..30).map(|i| format!("x{i}")).collect();
    let r = gw.embed("e", json!(items)).await;
    assert_eq!(r.status(), 200);
    for s in a.requests().iter().chain(b.requests().iter()) {
        assert!(s.body["input"].as_array().unwrap().len() <= 3);
    }
    assert_eq!(a.calls() + b.calls(), 10);
    gw.stop().await;
}
