//! The live page (`GET /`) and its stats JSON, over real HTTP and in a real
//! headless Chromium: the cache hit rates it shows match `/metrics`, a
//! breaker opened by a failing fake shows as open, it lays out on a phone
//! without sideways scrolling, it never shows a secret, it needs the admin
//! token when one is set, it can be moved or turned off (also by a reload),
//! and it answers outside the concurrency limit.

use std::sync::Arc;

use crate::common;

use common::browser::{Browser, artifact_note, artifacts};
use common::*;
use serde_json::{Value, json};

const TEAM_KEY: &str = "sk-team-SECRET-dashboard-7777777777";
const ADMIN: &str = "admin-token-123";

/// A failing provider (`bad`, breaker after 2 failures) before a good one
/// on a cached chat route, a cached embeddings route in sub-batches of 4,
/// a virtual key, prices, and the admin token.
fn policy(bad: &FakeUpstream, good: &FakeUpstream, extra_server: &str) -> String {
    let (bad, good) = (bad.base_url(), good.base_url());
    format!(
        r#"server:
  admin_token_env: TEST_ADMIN_TOKEN
{extra_server}providers:
  bad:
    kind: openai
    base_url: {bad}
    api_key_env: TEST_UPSTREAM_KEY
    breaker: {{failure_threshold: 2, open_for: 1h}}
  good:
    kind: openai
    base_url: {good}
    api_key_env: TEST_UPSTREAM_KEY
routes:
  chat:
    targets: [{{provider: bad}}, {{provider: good}}]
    retry: {{max_attempts: 1}}
    cache: {{enabled: true}}
  embed:
    targets: [{{provider: good, max_batch_inputs: 4}}]
    cache: {{enabled: true}}
prices:
  chat: {{input: 1.0, output: 2.0}}
keys:
  team:
    secret_env: TEAM_KEY
"#
    )
}

async fn failing() -> FakeUpstream {
    FakeUpstream::start(|_, _| async {
        Reply::Json(
            500,
            json!({"error": {"message": "upstream on fire", "type": "server_error"}}),
        )
    })
    .await
}

async fn start(extra_server: &str) -> (TestGateway, FakeUpstream, FakeUpstream) {
    let (bad, good) = (failing().await, FakeUpstream::openai().await);
    let gw = gateway_env(
        &policy(&bad, &good, extra_server),
        &[("TEAM_KEY", TEAM_KEY)],
    )
    .await;
    (gw, bad, good)
}

/// Chat: 3 distinct prompts twice (3 misses, 3 hits; the first two misses
/// fail on `bad`, which opens its breaker); embeddings: 10 inputs, then 6
/// of which 4 were seen (per input: 4 hits, 12 misses).
async fn traffic(gw: &TestGateway) {
    for round in 0..2 {
        for prompt in ["one", "two", "three"] {
            let r = gw
                .http
                .post(format!("{}/v1/chat/completions", gw.base))
                .bearer_auth(TEAM_KEY)
                .json(&json!({"model": "chat", "messages": [{"role": "user", "content": prompt}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "round {round}: {}",
                r.text().await.unwrap()
            );
        }
    }
    let first: Vec<String> = (0..10).map(|i| format!("doc {i}")).collect();
    let second: Vec<String> = (6..12).map(|i| format!("doc {i}")).collect();
    for inputs in [first, second] {
        let r = gw.embed("embed", json!(inputs)).await;
        assert_eq!(r.status(), 200);
    }
}

/// Hits and lookups of the cache kinds in `group`, read from `/metrics`.
fn cache_counts(metrics: &str, kinds: &[&str]) -> (f64, f64) {
    let sum = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter(|l| kinds.iter().any(|k| l.contains(&format!("kind=\"{k}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let hits = sum("switchyard_cache_hits_total{");
    (hits, hits + sum("switchyard_cache_misses_total{"))
}

/// A shown percentage ("66.7%") as a number.
fn shown(v: &Value) -> f64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not text: {v}"));
    text.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("not a percentage: {text:?}"))
}

fn assert_within_rounding(shown_pct: f64, ratio: f64, what: &str) {
    // One decimal shown: at most half a tenth of a percent off.
    let diff = (shown_pct - ratio * 100.0).abs();
    assert!(
        diff <= 0.05 + 1e-9,
        "{what}: the page shows {shown_pct}%, /metrics says {:.4}%",
        ratio * 100.0
    );
}

async fn authed(gw: &TestGateway, path: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}{path}", gw.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_live_page_shows_what_the_metrics_say_in_a_real_browser() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let (gw, bad, _good) = start("").await;
    traffic(&gw).await;
    assert_eq!(bad.calls(), 2, "the breaker opened after two failures");
    let metrics = gw.metrics().await;
    let answers = cache_counts(&metrics, &["chat", "chat_stream", "completions"]);
    let embeddings = cache_counts(&metrics, &["embeddings"]);
    assert_eq!(answers, (3.0, 6.0), "{metrics}");
    assert_eq!(embeddings, (4.0, 16.0), "{metrics}");
    assert_eq!(
        gw.metric(r#"switchyard_breaker_state{provider="bad"}"#)
            .await,
        1.0
    );

    let shots = artifacts("dashboard");
    let creds = format!("operator:{ADMIN}");
    let report = browser
        .look_at(&format!("{}/", gw.base), &shots, Some(&creds))
        .await;
    assert_eq!(report["status"], 200, "{report}");
    assert_eq!(report["errors"], json!([]), "no script or load errors");
    for (view, png) in [("laptop", "laptop_png"), ("phone", "phone_png")] {
        let seen = &report[view];
        assert_eq!(seen["banner"], Value::Null, "{view}: {seen}");
        assert_eq!(seen["live"], "live", "{view}");
        for (group, (hits, lookups)) in [("answers", answers), ("embeddings", embeddings)] {
            let ratio = hits / lookups;
            let card = &seen["cache"][group];
            assert_within_rounding(shown(&card["total"]), ratio, &format!("{view} {group}"));
            // The gateway is younger than the window: the window is all of it.
            assert_within_rounding(shown(&card["window"]), ratio, &format!("{view} {group}"));
            assert_eq!(card["lookups"], lookups.to_string(), "{view} {group}");
        }
        assert_eq!(seen["providers"]["bad"]["breaker"], "open", "{view}");
        assert_eq!(seen["providers"]["good"]["breaker"], "closed", "{view}");
        assert!(
            seen["providers"]["bad"]["recent"]
                .as_str()
                .unwrap()
                .contains("status_5xx 2"),
            "{view}: {}",
            seen["providers"]["bad"]
        );
        assert_eq!(seen["routes"], json!(["chat", "embed"]), "{view}");
        assert_eq!(
            seen["sub_batches_total"], "4",
            "{view}: 10 then 2 misses by 4"
        );
        assert!(seen["sparklines"].as_u64().unwrap() > 0, "{view}");
        assert!(seen["usage_rows"].as_u64().unwrap() >= 2, "{view}");
        let html = seen["html"].as_str().unwrap();
        for secret in [TEST_KEY, TEAM_KEY, ADMIN] {
            assert!(!html.contains(secret), "{view}: a secret on the page");
        }
        let png = std::path::PathBuf::from(report[png].as_str().unwrap());
        assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "{png:?}");
        artifact_note(&format!("live page screenshot ({view})"), &png);
    }
    assert_eq!(
        report["laptop"]["renders"].as_u64().map(|n| n >= 2),
        Some(true)
    );
    assert_eq!(report["phone"]["overflows"], false, "no sideways scrolling");
    gw.stop().await;
}

#[tokio::test]
async fn the_stats_json_matches_the_metrics() {
    let (gw, _bad, _good) = start("").await;
    traffic(&gw).await;
    let stats: Value = authed(&gw, "/stats.json").await.json().await.unwrap();
    let metrics = gw.metrics().await;
    let metric = |sample: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let chat = &stats["cache"]["answers"];
    assert_eq!(
        (chat["hits"].clone(), chat["misses"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(chat["hit_ratio"], json!(0.5));
    let emb = &stats["cache"]["embeddings"];
    assert_eq!(emb["window_hit_ratio"], json!(0.25));
    assert_eq!(
        stats["sub_batches"]["total"].as_f64(),
        Some(metric(
            r#"switchyard_fanout_sub_batches_total{route="embed"}"#
        ))
    );
    let routes: Vec<&str> = stats["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    assert_eq!(
        routes,
        ["chat", "embed"],
        "the page's own polls are not routes"
    );
    let chat_route = &stats["routes"][0];
    assert_eq!(chat_route["requests"]["total"], json!(6.0));
    assert!(chat_route["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    let providers = stats["providers"].as_array().unwrap();
    let bad = providers.iter().find(|p| p["provider"] == "bad").unwrap();
    assert_eq!(
        (bad["breaker"].as_str(), bad["kind"].as_str()),
        (Some("open"), Some("openai"))
    );
    assert_eq!(bad["recent_failures"]["status_5xx"], json!(2));
    assert_eq!(bad["failure_ratio"], json!(1.0));
    // Tokens and spend per key alias and route.
    let usage = stats["usage"].as_array().unwrap();
    let team_chat = usage
        .iter()
        .find(|u| u["key"] == "team" && u["route"] == "chat")
        .unwrap_or_else(|| panic!("{usage:?}"));
    let prompt =
        metric(r#"switchyard_tokens_total{key="team",kind="prompt",provider="good",route="chat"}"#);
    assert_eq!(team_chat["prompt_tokens"].as_f64(), Some(prompt));
    assert!(team_chat["cost_usd"].as_f64().unwrap() > 0.0);
    gw.stop().await;
}

#[tokio::test]
async fn the_page_needs_the_admin_token_and_never_shows_a_secret() {
    let (gw, _bad, _good) = start("").await;
    traffic(&gw).await;
    for path in ["/", "/stats.json"] {
        let r = gw.get(path).await;
        assert_eq!(r.status(), 401, "{path} without the token");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
        let e = error_of(r).await;
        assert_eq!(e["code"], "invalid_admin_token");
        for wrong in ["Bearer nope", "Basic b3BlcmF0b3I6bm9wZQ=="] {
            let r = gw
                .http
                .get(format!("{}{path}", gw.base))
                .header("authorization", wrong)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} with {wrong}");
        }
    }
    let page = authed(&gw, "/").await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("'sha256-"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Switchyard"), "the page itself");
    assert!(
        !html.contains("src=") && !html.contains("href=\"http"),
        "self-contained: nothing loaded from elsewhere"
    );
    // A browser's Basic login works the same.
    let basic = gw
        .http
        .get(format!("{}/stats.json", gw.base))
        .basic_auth("anyone", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let stats = basic.text().await.unwrap();
    assert!(stats.contains("\"team\""), "the key's alias is shown");
    for secret in [TEST_KEY, TEAM_KEY, ADMIN] {
        assert!(!html.contains(secret), "a secret in the page");
        assert!(!stats.contains(secret), "a secret in the stats");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_page_moves_and_turns_off_also_by_reload() {
    let (gw, bad, good) = start("  dashboard: {path: /ops/live/}\n").await;
    assert_eq!(gw.get("/").await.status(), 404, "not at / any more");
    for path in ["/ops/live", "/ops/live/", "/ops/live/stats.json"] {
        assert_eq!(authed(&gw, path).await.status(), 200, "{path}");
    }
    // HEAD answers like GET, without a body.
    let head = gw
        .http
        .head(format!("{}/ops/live", gw.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    gw.write_policy(
        "policy.yaml",
        &policy(&bad, &good, "  dashboard: {enabled: false}\n"),
    );
    let r = gw
        .http
        .post(format!("{}/admin/reload", gw.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in ["/", "/stats.json", "/ops/live", "/ops/live/stats.json"] {
        let r = authed(&gw, path).await;
        assert_eq!(r.status(), 404, "{path} once turned off");
        assert_eq!(error_of(r).await["code"], "unknown_url");
    }
    // A bad path is refused at its line, and the running policy stays.
    gw.write_policy(
        "policy.yaml",
        &policy(&bad, &good, "  dashboard:\n    path: /metrics\n"),
    );
    let r = gw
        .http
        .post(format!("{}/admin/reload", gw.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("policy.yaml:4: server.dashboard.path: \\\"/metrics\\\" would hide"),
        "{body}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_page_answers_outside_the_concurrency_limit_and_counts_calls_in_flight() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&release);
    let slow = FakeUpstream::start(move |s, _| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            default_reply(&s)
        }
    })
    .await;
    let yaml = format!(
        "server:\n  max_concurrent_requests: 1\n{}routes:\n  chat:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&slow], "")
    );
    let gw = gateway(&yaml).await;
    let held = gw.spawn_post(
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [{"role": "user", "content": "hold"}]}),
    );
    let in_flight = async || -> Value {
        let stats: Value = gw.get("/stats.json").await.json().await.unwrap();
        stats["providers"][0]["in_flight"].clone()
    };
    eventually(async || in_flight().await == json!(1)).await;
    // The one request slot is taken: the API is refused, the page is not.
    let refused = gw.chat("chat", "another").await;
    assert_eq!(refused.status(), 503);
    let page = gw.get("/").await;
    assert_eq!(page.status(), 200, "no admin token: open");
    let stats: Value = gw.get("/stats.json").await.json().await.unwrap();
    assert_eq!(stats["in_flight"], json!(1));
    assert_eq!(stats["max_concurrent_requests"], json!(1));
    // Its bulkhead: half (rounded up) of the gateway's one request slot.
    assert_eq!(stats["providers"][0]["concurrency_limit"], json!(1));
    release.notify_one();
    assert_eq!(held.await.unwrap().status(), 200);
    eventually(async || in_flight().await == json!(0)).await;
    gw.stop().await;
}
