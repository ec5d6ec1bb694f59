//! Virtual keys over real HTTP: 401 without a configured key when auth is
//! required, 403 outside a key's routes, listings per key, per-key cache
//! scope, keys never in responses or metrics, `switchyard keys hash`.

use crate::common;

use common::*;
use serde_json::{Value, json};

const TEAM: &str = "sk-team-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OPS: &str = "sk-ops-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn policy(auth: &str) -> String {
    let team_hash = switchyard::config::key_hash(TEAM);
    format!(
        "server:\n  auth: {auth}\nproviders:\n  m:\n    kind: mock\nroutes:\n  chat:\n    targets: [{{provider: m, model: small}}]\n    cache: {{enabled: true}}\n  chat-private:\n    targets: [{{provider: m, model: small}}]\n    cache: {{enabled: true, scope: per_key}}\n  embed:\n    targets: [{{provider: m, model: e}}]\n    cache: {{enabled: true, scope: per_key}}\nkeys:\n  team:\n    secret_hash: \"{team_hash}\"\n    models: [\"chat*\"]\n  ops:\n    secret_env: OPS_KEY\n"
    )
}

async fn start(auth: &str) -> TestGateway {
    gateway_env(&policy(auth), &[("OPS_KEY", OPS)]).await
}

async fn call(gw: &TestGateway, key: Option<&str>, path: &str, body: Value) -> reqwest::Response {
    let mut r = gw.http.post(format!("{}{path}", gw.base)).json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn required_auth_refuses_missing_and_unknown_keys_with_401() {
    let gw = start("required").await;
    for key in [None, Some("sk-unknown-cccccccccccccccccccc")] {
        let r = call(&gw, key, "/v1/chat/completions", chat("chat", "hi")).await;
        assert_eq!(r.status(), 401);
        let e = error_of(r).await;
        assert_eq!(e["type"], "authentication_error");
        assert_eq!(e["code"], "invalid_api_key");
        assert!(!e.to_string().contains("sk-unknown"), "{e}");
    }
    // Anthropic SDKs send x-api-key; the errors come in Anthropic's shape.
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.base))
        .header("x-api-key", "nope")
        .json(&json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.base))
        .header("x-api-key", OPS)
        .json(&json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Health and metrics stay open.
    assert_eq!(gw.get("/healthz").await.status(), 200);
    let metrics = gw.metrics().await;
    for secret in [TEAM, OPS, &switchyard::config::key_hash(TEAM)[7..]] {
        assert!(!metrics.contains(secret));
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_key_calls_only_its_routes_and_lists_only_them() {
    let gw = start("required").await;
    let r = call(&gw, Some(TEAM), "/v1/chat/completions", chat("chat", "hi")).await;
    assert_eq!(r.status(), 200);
    let r = call(
        &gw,
        Some(TEAM),
        "/v1/embeddings",
        json!({"model": "embed", "input": "x"}),
    )
    .await;
    assert_eq!(r.status(), 403);
    let e = error_of(r).await;
    assert_eq!(e["code"], "model_not_allowed");
    assert_eq!(e["type"], "permission_error");
    assert_eq!(e["param"], "model");
    assert!(e["message"].as_str().unwrap().contains("`team`"), "{e}");
    let r = call(
        &gw,
        Some(OPS),
        "/v1/embeddings",
        json!({"model": "embed", "input": "x"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let models = |key: &'static str| {
        let gw = &gw;
        async move {
            let v: Value = gw
                .http
                .get(format!("{}/v1/models", gw.base))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut ids: Vec<String> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(models(TEAM).await, ["chat", "chat-private"]);
    assert_eq!(models(OPS).await, ["chat", "chat-private", "embed"]);
    let r = gw
        .http
        .get(format!("{}/v1/models/embed", gw.base))
        .bearer_auth(TEAM)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    gw.stop().await;
}

#[tokio::test]
async fn shared_routes_serve_every_caller_from_one_cache_and_per_key_routes_do_not() {
    let gw = start("open").await;
    let hit = |r: &reqwest::Response| {
        r.headers()
            .get("x-switchyard-cache")
            .map(|v| v.to_str().unwrap().to_string())
    };
    // Shared (the default): the second caller gets the first one's answer.
    let a = call(&gw, Some(TEAM), "/v1/chat/completions", chat("chat", "q1")).await;
    assert_eq!(hit(&a).as_deref(), Some("miss"));
    let b = call(&gw, Some(OPS), "/v1/chat/completions", chat("chat", "q1")).await;
    assert_eq!(hit(&b).as_deref(), Some("hit"));
    // Per key: each key (and each anonymous credential) has its own entries.
    for (key, want) in [
        (Some(TEAM), "miss"),
        (Some(TEAM), "hit"),
        (Some(OPS), "miss"),
        (Some("sk-anon-1"), "miss"),
        (Some("sk-anon-2"), "miss"),
        (Some("sk-anon-1"), "hit"),
    ] {
        let r = call(&gw, key, "/v1/chat/completions", chat("chat-private", "q1")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(hit(&r).as_deref(), Some(want), "{key:?}");
    }
    // (team may not call embed: its key is known, even on an open gateway.)
    for (key, want) in [(OPS, "miss"), ("sk-anon-1", "miss"), (OPS, "hit")] {
        let r = call(
            &gw,
            Some(key),
            "/v1/embeddings",
            json!({"model": "embed", "input": ["a", "b"]}),
        )
        .await;
        assert_eq!(hit(&r).as_deref(), Some(want), "{key}");
    }
    // Open: an unknown key is served.
    let r = call(
        &gw,
        Some("sk-whoever"),
        "/v1/chat/completions",
        chat("chat", "q2"),
    )
    .await;
    assert_eq!(r.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn keys_reload_with_the_policy_and_a_bad_keys_section_keeps_the_running_ones() {
    let gw = start("required").await;
    let chat_as = async |key: &str| {
        call(&gw, Some(key), "/v1/chat/completions", chat("chat", "hi"))
            .await
            .status()
    };
    assert_eq!(chat_as(TEAM).await, 200);
    // The team's key is rotated: after the reload only the new one works.
    const ROTATED: &str = "sk-team-rotated-dddddddddddddddddddd";
    let key_hash = switchyard::config::key_hash;
    let rotated = policy("required").replace(&key_hash(TEAM), &key_hash(ROTATED));
    gw.write_policy("policy.yaml", &rotated);
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(chat_as(TEAM).await, 401);
    assert_eq!(chat_as(ROTATED).await, 200);
    // A broken keys section: every error at file:line, the running keys stay.
    let broken = rotated
        .replace(
            "    models: [\"chat*\"]\n",
            "    models: [\"chat*\"]\n    rpm: 0\n",
        )
        .replace("    secret_env: OPS_KEY\n", "    secret_env: NO_SUCH_VAR\n");
    assert_ne!(broken, rotated);
    gw.write_policy("policy.yaml", &broken);
    let r = gw.post("/admin/reload", json!({})).await;
    assert_eq!(r.status(), 422);
    let e = error_of(r).await;
    let details: Vec<String> = serde_json::from_value(e["details"].clone()).unwrap();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(
        details
            .iter()
            .any(|d| d.contains("policy.yaml:") && d.contains("keys.team.rpm")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("policy.yaml:") && d.contains("keys.ops.secret_env")),
        "{details:?}"
    );
    assert!(!e.to_string().contains(ROTATED), "{e}");
    assert_eq!(chat_as(ROTATED).await, 200);
    assert_eq!(chat_as(OPS).await, 200);
    gw.stop().await;
}

#[test]
fn keys_hash_prints_the_policy_hash_of_stdin_and_keys_new_makes_a_usable_pair() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_switchyard");
    let mut child = Command::new(bin)
        .args(["keys", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{TEAM}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        switchyard::config::key_hash(TEAM)
    );
    let out = Command::new(bin).args(["keys", "new"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim();
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix("secret_hash:"))
        .unwrap()
        .trim()
        .trim_matches('"');
    assert!(key.starts_with("sk-sy-") && key.len() == 6 + 64, "{key}");
    assert_eq!(hash, switchyard::config::key_hash(key));
    assert!(switchyard::config::parse_key_hash(hash).is_some());
}
