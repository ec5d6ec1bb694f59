//! OpenAI wire compatibility over real HTTP: chat (JSON and SSE), embeddings,
//! models, health, metrics, and clean errors for bad input.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn one_route(up: &FakeUpstream, route: &str) -> String {
    format!(
        "{}routes:\n  {route}:\n    targets:\n      - provider: p0\n        model: upstream-model\n",
        providers_yaml(&[up], "")
    )
}

#[tokio::test]
async fn chat_passes_unknown_fields_both_ways_and_rewrites_model() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&one_route(&up, "my-model")).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "my-model", "messages": [{"role": "user", "content": "hi"}],
                   "temperature": 0.2, "vendor_knob": {"nested": [1, 2]}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "p0");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["system_fingerprint"], "fp_extra_field_kept");
    assert_eq!(body["model"], "upstream-model");
    let seen = &up.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["model"], "upstream-model");
    assert_eq!(seen.body["vendor_knob"], json!({"nested": [1, 2]}));
    assert_eq!(seen.body["temperature"], 0.2);
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {TEST_KEY}").as_str()
    );
    gw.stop().await;
}

#[tokio::test]
async fn chat_streams_sse_chunks_in_order() {
    let events: Vec<String> = (0..5)
        .map(|i| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n"))
        .chain(["data: [DONE]\n\n".to_string()])
        .collect();
    let ev = events.clone();
    let up = FakeUpstream::start(move |s, _| {
        let ev = ev.clone();
        async move {
            assert_eq!(s.body["stream"], true);
            Reply::Sse(ev, Duration::from_millis(20))
        }
    })
    .await;
    let gw = gateway(&one_route(&up, "m")).await;
    let mut resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut chunks = 0;
    let mut text = String::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        chunks += 1;
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert_eq!(text, events.concat());
    assert!(chunks >= 2, "streamed incrementally, got {chunks} chunk(s)");
    gw.stop().await;
}

#[tokio::test]
async fn embeddings_accept_every_input_shape_and_both_encodings() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&one_route(&up, "emb")).await;
    let cases = [
        json!("one string"),
        json!(["a", "bb", "ccc"]),
        json!([1, 2, 3]),
        json!([[1, 2], [3], [4, 5, 6]]),
    ];
    for input in cases {
        let items: Vec<Value> = match &input {
            Value::String(_) => vec![input.clone()],
            Value::Array(a) if a[0].is_number() => vec![input.clone()],
            Value::Array(a) => a.clone(),
            _ => unreachable!(),
        };
        for format in ["float", "base64"] {
            let resp = gw
                .post(
                    "/v1/embeddings",
                    json!({"model": "emb", "input": input, "encoding_format": format}),
                )
                .await;
            assert_eq!(resp.status(), 200, "{input} {format}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["object"], "list");
            let data = body["data"].as_array().unwrap();
            assert_eq!(data.len(), items.len());
            for (i, (d, item)) in data.iter().zip(&items).enumerate() {
                assert_eq!(d["index"], i);
                let v: Vec<f32> = if format == "base64" {
                    switchyard::api::embeddings::decode_base64(d["embedding"].as_str().unwrap())
                        .unwrap()
                } else {
                    serde_json::from_value(d["embedding"].clone()).unwrap()
                };
                assert_eq!(v, expected_vector(item), "{input} item {i}");
            }
            assert_eq!(body["usage"]["prompt_tokens"], items.len() * 2);
        }
    }
    // What went upstream: the model rewritten, inputs as sent.
    let last = up.requests().pop().unwrap();
    assert_eq!(last.body["model"], "upstream-model");
    assert_eq!(last.body["input"], json!([[1, 2], [3], [4, 5, 6]]));
    gw.stop().await;
}

#[tokio::test]
async fn models_health_ready_and_metrics() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}routes:\n  b-model:\n    targets: [{{provider: p0}}]\n  a-model:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&up], "")
    ))
    .await;
    let models: Value = gw.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-model", "b-model"]);
    let one: Value = gw.get("/v1/models/a-model").await.json().await.unwrap();
    assert_eq!(one["id"], "a-model");
    assert_eq!(gw.get("/v1/models/nope").await.status(), 404);
    assert_eq!(gw.get("/healthz").await.status(), 200);
    let ready = gw.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(gw.chat("a-model", "hi").await.status(), 200);
    let m = gw.get("/metrics").await;
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = m.text().await.unwrap();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("switchyard_"), "unprefixed metric: {line}");
    }
    assert!(
        text.contains(
            r#"switchyard_requests_total{endpoint="chat",route="a-model",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"switchyard_upstream_requests_total{outcome="success",provider="p0"} 1"#)
    );
    assert!(text.contains("switchyard_request_duration_seconds_bucket"));
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_gets_openai_errors_with_the_right_status() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "server:\n  max_body_bytes: 2000\n{}",
        one_route(&up, "m")
    ))
    .await;
    let raw = |body: &'static str| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let e = error_of(raw("{not json").await.unwrap()).await;
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"].as_str().unwrap().contains("not valid JSON"));

    let r = raw("").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = raw("[1,2]").await.unwrap();
    assert_eq!(r.status(), 400);

    let r = gw
        .post("/v1/chat/completions", json!({"messages": []}))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await["param"], "model");

    let r = gw.post("/v1/chat/completions", json!({"model": "m"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await["param"], "messages");

    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role":"user","content":"x"}], "stream": "yes"}),
        )
        .await;
    assert_eq!(r.status(), 400);

    let r = gw.chat("no-such-model", "hi").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_of(r).await["code"], "model_not_found");

    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(5000)}]}),
        )
        .await;
    assert_eq!(r.status(), 413);
    error_of(r).await;

    for bad in [
        json!(""),
        json!([]),
        json!([""]),
        json!([1, -2]),
        json!([[1], "a", 3]),
        json!({"a": 1}),
        json!(null),
    ] {
        let r = gw
            .post("/v1/embeddings", json!({"model": "m", "input": bad}))
            .await;
        assert_eq!(r.status(), 400, "input {bad}");
        assert_eq!(error_of(r).await["param"], "input");
    }
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "m", "input": "x", "encoding_format": "int8"}),
        )
        .await;
    assert_eq!(r.status(), 400);

    let r = gw.get("/v1/chat/completions").await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    error_of(r).await;
    let r = gw.get("/v1/nothing-here").await;
    assert_eq!(r.status(), 404);
    error_of(r).await;
    assert_eq!(up.calls(), 0, "nothing bad reached the upstream");
    gw.stop().await;
}

#[tokio::test]
async fn secrets_never_leak_into_errors_or_metrics() {
    // The upstream rejects our key and echoes nothing; the route then fails.
    let up = FakeUpstream::start(|_, _| async {
        Reply::Json(
            401,
            json!({"error": {"message": "bad key", "type": "invalid_request_error"}}),
        )
    })
    .await;
    let gw = gateway(&format!(
        "server:\n  admin_token_env: TEST_ADMIN_TOKEN\n{}",
        one_route(&up, "m")
    ))
    .await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(
        r.status(),
        502,
        "a provider auth failure is the gateway's problem, not the client's"
    );
    let text = r.text().await.unwrap();
    assert!(!text.contains(TEST_KEY), "{text}");
    let metrics = gw.metrics().await;
    assert!(!metrics.contains(TEST_KEY));
    assert!(!metrics.contains("admin-token-123"));
    // Admin requires its token.
    let r = gw
        .http
        .post(format!("{}/admin/reload", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e = error_of(r).await;
    assert!(!e.to_string().contains("admin-token-123"));
    let r = gw
        .http
        .post(format!("{}/admin/reload", gw.base))
        .bearer_auth("admin-token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&one_route(&up, "m")).await;
    let r = gw
        .http
        .get(format!("{}/healthz", gw.base))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    let a = gw.chat("m", "x").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let b = gw.get("/v1/nope").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(a.len(), 32);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
    gw.stop().await;
}

#[tokio::test]
async fn upstream_client_errors_pass_through_unchanged() {
    let up = FakeUpstream::start(|_, _| async {
        Reply::Json(400, json!({"error": {"message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens", "code": null}}))
    })
    .await;
    let gw = gateway(&one_route(&up, "m")).await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 400);
    let e = error_of(r).await;
    assert_eq!(e["message"], "max_tokens is too large");
    assert_eq!(e["param"], "max_tokens");
    assert_eq!(
        up.calls(),
        1,
        "a malformed request is neither retried nor failed over"
    );
    gw.stop().await;
}

#[test]
fn grafana_dashboard_queries_only_metrics_that_exist() {
    let dash: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana-dashboard.json"
    )))
    .unwrap();
    // Give every family one sample so the registry renders all of them.
    let m = switchyard::metrics::Metrics::new();
    m.requests.with_label_values(&["chat", "r", "200"]).inc();
    m.request_duration
        .with_label_values(&["chat", "r"])
        .observe(0.1);
    m.upstream_requests
        .with_label_values(&["p", "success"])
        .inc();
    m.upstream_duration.with_label_values(&["p"]).observe(0.1);
    m.retries.with_label_values(&["r", "p"]).inc();
    m.failovers.with_label_values(&["r"]).inc();
    m.breaker_state.with_label_values(&["p"]).set(0);
    m.breaker_transitions
        .with_label_values(&["p", "open"])
        .inc();
    m.cache_hits.with_label_values(&["r", "chat"]).inc();
    m.cache_misses.with_label_values(&["r", "chat"]).inc();
    m.coalesced.with_label_values(&["r", "chat"]).inc();
    m.rate_limited.with_label_values(&["client"]).inc();
    m.fanout_sub_batches.with_label_values(&["r"]).inc();
    m.fanout_inputs.with_label_values(&["r"]).observe(1.0);
    m.reloads.with_label_values(&["success"]).inc();
    m.tokens
        .with_label_values(&["r", "p", "_unknown", "prompt"])
        .inc();
    m.cost_usd.with_label_values(&["r", "p", "_unknown"]).inc();
    m.budget_remaining
        .with_label_values(&["_unknown", "usd"])
        .set(1.0);
    m.state_errors.with_label_values(&["admit"]).inc();
    m.state_duration
        .with_label_values(&["admit"])
        .observe(0.001);
    m.provider_limit.with_label_values(&["p"]).set(1);
    m.provider_in_flight.with_label_values(&["p"]).set(1);
    m.provider_refusals
        .with_label_values(&["p", "at_limit"])
        .inc();
    m.connections_closed
        .with_label_values(&["idle_timeout"])
        .inc();
    let text = m.render();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10);
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("switchyard_cache_hits_total")
                && e.contains("switchyard_cache_misses_total")),
        "a cache hit rate panel"
    );
    for (metric, by) in [
        ("switchyard_tokens_total", "by (route, kind)"),
        ("switchyard_cost_usd_total", "by (key)"),
        ("switchyard_cost_usd_total", "by (route)"),
        ("switchyard_budget_remaining", "by (key)"),
        ("switchyard_state_errors_total", "by (op)"),
        ("switchyard_state_up", "min("),
        ("switchyard_provider_concurrency_limit", "by (provider)"),
        (
            "switchyard_provider_refusals_total",
            "by (provider, reason)",
        ),
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric) && e.contains(by)),
            "a panel of {metric} {by}"
        );
    }
    for expr in exprs {
        for (i, _) in expr.match_indices("switchyard_") {
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                text.contains(&format!("\n{name}")) || text.starts_with(&name),
                "dashboard uses unknown metric {name}"
            );
        }
    }
}
