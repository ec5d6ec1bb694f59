//! Model names as agents send them, through the real gateway: routes
//! matched by exact name, alias or `match` pattern (exact first, then the
//! most specific pattern), the requested name forwarded or mapped per
//! target (seen by a fake upstream on 127.0.0.1:0), `/v1/models` listing
//! concrete names only, keys checked against the route a name selects, and
//! the access log naming what was asked for (sanitised, capped) with the
//! gateway's own refusals' code and message (from an endpoint or an edge
//! layer).

use crate::common;

use common::logs::capture_logs;
use common::*;
use serde_json::{Value, json};

fn policy(up: &FakeUpstream, extra: &str) -> String {
    format!(
        "{}routes:
  gpt-4o:
    targets: [{{provider: p0}}]
  agents:
    match: [\"claude-*\", \"gpt-5*\"]
    aliases: [default-agent]
    targets: [{{provider: p0}}]
  opus:
    match: [\"claude-opus-*\"]
    targets: [{{provider: p0, model: claude-opus-4-1}}]
  prefixed:
    match: [\"anthropic/*\"]
    targets: [{{provider: p0, model: \"{{*}}\"}}]
{extra}",
        providers_yaml(&[up], "")
    )
}

/// The model the upstream was asked for by the last request.
fn last_model(up: &FakeUpstream) -> Value {
    up.requests().last().unwrap().body["model"].clone()
}

#[tokio::test]
async fn names_select_routes_exact_alias_then_pattern_and_targets_get_their_model() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&policy(&up, "")).await;
    for (asked, sent) in [
        ("gpt-4o", "gpt-4o"),
        // A pattern route forwards the name asked for ...
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("gpt-5.2-codex", "gpt-5.2-codex"),
        // ... the most specific pattern wins, and may map it ...
        ("claude-opus-4-8", "claude-opus-4-1"),
        // ... or send what its `*` matched.
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        // An alias is the route's name.
        ("default-agent", "agents"),
    ] {
        let r = gw.chat(asked, "hi").await;
        assert_eq!(r.status(), 200, "{asked}");
        assert_eq!(last_model(&up), sent, "{asked}");
    }
    // Metrics are labelled by route, never by the name asked for.
    let m = gw.metrics().await;
    assert!(
        m.contains(r#"switchyard_requests_total{endpoint="chat",route="agents",status="200"} 3"#),
        "{m}"
    );
    assert!(!m.contains("claude-sonnet-4-5"), "{m}");
    let r = gw.chat("llama-3", "hi").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_of(r).await["code"], "model_not_found");
    assert!(
        gw.metrics().await.contains(
            r#"switchyard_requests_total{endpoint="chat",route="_unknown",status="404"} 1"#
        )
    );
    // The list holds route names and aliases, not patterns.
    let list: Value = gw.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["agents", "default-agent", "gpt-4o", "opus", "prefixed"]
    );
    // One model: found as a request's name would be.
    let one = gw.get("/v1/models/claude-opus-4-8").await;
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["id"], "claude-opus-4-8");
    assert_eq!(gw.get("/v1/models/llama-3").await.status(), 404);
    gw.stop().await;
}

#[tokio::test]
async fn keys_allow_the_route_a_name_selects() {
    let up = FakeUpstream::openai().await;
    let keys = "server: {auth: required}\nkeys:\n  agent:\n    secret_env: AGENT_KEY\n    models: [agents]\n  plain:\n    secret_env: PLAIN_KEY\n    models: [gpt-4o]\n";
    let gw = gateway_env(
        &policy(&up, keys),
        &[("AGENT_KEY", "sk-agent-1"), ("PLAIN_KEY", "sk-plain-1")],
    )
    .await;
    let call = |key: &'static str, model: &'static str| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(
        call("sk-agent-1", "claude-haiku-4-5")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call("sk-agent-1", "default-agent").await.unwrap().status(),
        200
    );
    let r = call("sk-plain-1", "claude-haiku-4-5").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_of(r).await["code"], "model_not_allowed");
    // The list shows a key only what it may call.
    let list: Value = gw
        .http
        .get(format!("{}/v1/models", gw.base))
        .bearer_auth("sk-agent-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    gw.stop().await;
}

#[tokio::test]
async fn the_access_log_says_what_was_asked_for_and_why_it_was_refused() {
    let logs = capture_logs();
    let up = FakeUpstream::openai().await;
    let gw = gateway(&policy(&up, "")).await;
    assert_eq!(gw.chat("claude-opus-4-8", "hi").await.status(), 200);
    let hostile = format!("evil\"\n name={}", "x".repeat(500));
    assert_eq!(gw.chat(&hostile, "hi").await.status(), 404);
    let bad = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": "nope"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    // Refused by an edge layer, before any endpoint: logged the same way.
    let encoded = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .header("content-encoding", "compress")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(encoded.status(), 415);
    let access = |needle: &str| {
        logs.lines_with("switchyard::access")
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect::<Vec<_>>()
    };
    eventually(async || {
        access("status=404").len() == 1
            && access("status=400").len() == 1
            && access("status=415").len() == 1
    })
    .await;
    let ok = access("requested=\"claude-opus-4-8\"");
    assert_eq!(ok.len(), 1, "{}", logs.text());
    assert!(
        ok[0].contains("route=\"opus\"") && ok[0].contains("error_code=\"-\""),
        "{}",
        ok[0]
    );
    let unknown = &access("status=404")[0];
    assert!(unknown.contains("route=\"_unknown\""), "{unknown}");
    assert!(
        unknown.contains("error_code=\"model_not_found\""),
        "{unknown}"
    );
    // The client's name, sanitised (no quote, no newline) and cut.
    let requested = unknown
        .split("requested=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(requested.starts_with("evil?? name=xxx"), "{requested}");
    assert!(requested.ends_with("..."), "{requested}");
    assert!(requested.len() <= 128 + 3, "{}", requested.len());
    // The refusal's message is capped too (400 characters).
    assert!(
        !logs.text().contains(&"x".repeat(450)),
        "the whole name was logged"
    );
    let invalid = &access("status=400")[0];
    assert!(
        invalid.contains("error_code=\"invalid_request_error\""),
        "{invalid}"
    );
    assert!(
        invalid.contains("error=\"'messages' must be an array.\""),
        "{invalid}"
    );
    let edge = &access("status=415")[0];
    assert!(
        edge.contains("error_code=\"unsupported_content_encoding\""),
        "{edge}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_shipped_policies_serve_the_agents_default_model_names() {
    let gw = shipped_gateway().await;
    // Claude Code 2.1's and Codex 0.171's defaults, and their neighbours.
    for name in [
        "claude-opus-4-8",
        "claude-haiku-4-5",
        "gpt-6.2-sol",
        "gpt-5.2-codex",
    ] {
        let r = gw.get(&format!("/v1/models/{name}")).await;
        assert_eq!(r.status(), 200, "{name}");
        let r = gw.chat(name, "hi").await;
        assert_eq!(r.status(), 200, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["model"], name, "the mock is asked for the name sent");
    }
    // Exact routes still come first.
    assert!(gw.chat("gpt-4o-mini", "hi").await.status() == 200);
    let m = gw.metrics().await;
    assert!(
        m.contains(r#"route="coding-agents",status="200"} 4"#),
        "{m}"
    );
    assert!(m.contains(r#"route="gpt-4o-mini",status="200"} 1"#), "{m}");
    gw.stop().await;
}
