//! Hot reload (admin, file watch, SIGHUP), `switchyard check`, the binary on
//! the shipped policies, and graceful shutdown.

use crate::common;

use common::served::Served;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn policy(up: &FakeUpstream, routes: &[&str]) -> String {
    let mut y = format!(
        "server:\n  reload_interval: 50ms\n{}routes:\n",
        providers_yaml(&[up], "")
    );
    for r in routes {
        y.push_str(&format!("  {r}:\n    targets: [{{provider: p0}}]\n"));
    }
    y
}

async fn model_ids(gw: &TestGateway) -> Vec<String> {
    let v: Value = gw.get("/v1/models").await.json().await.unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn admin_reload_swaps_in_a_valid_policy_and_rejects_a_bad_one() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&policy(&up, &["old"])).await;
    gw.write_policy("policy.yaml", &policy(&up, &["old", "new"]));
    let r = gw.post("/admin/reload", json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["policy_generation"], 2);
    assert_eq!(model_ids(&gw).await, ["new", "old"]);
    assert_eq!(gw.chat("new", "hi").await.status(), 200);

    // Two mistakes in two files: both reported, old policy kept.
    gw.write_policy(
        "policy.yaml",
        &policy(&up, &["old"]).replace("targets: [{provider: p0}]", "targets: [{provider: nope}]"),
    );
    gw.write_policy(
        "extra.yaml",
        "routes:\n  x:\n    strategy: random\n    targets: [{provider: p0}]\n",
    );
    let r = gw.post("/admin/reload", json!({})).await;
    assert_eq!(r.status(), 422);
    let e = error_of(r).await;
    assert_eq!(e["code"], "invalid_policy");
    let details: Vec<String> = serde_json::from_value(e["details"].clone()).unwrap();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(
        details.iter().any(|d| d.contains("policy.yaml:")
            && d.contains("routes.old.targets[0].provider")
            && d.contains("unknown provider \"nope\"")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("extra.yaml:") && d.contains("routes.x.strategy")),
        "{details:?}"
    );
    assert_eq!(
        model_ids(&gw).await,
        ["new", "old"],
        "old policy still in force"
    );
    assert_eq!(gw.chat("new", "hi").await.status(), 200);
    assert_eq!(
        gw.metric(r#"switchyard_policy_reloads_total{result="success"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_policy_reloads_total{result="failure"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric("switchyard_policy_last_reload_success").await,
        0.0
    );
    assert_eq!(gw.metric("switchyard_policy_generation").await, 2.0);
    gw.stop().await;
}

#[tokio::test]
async fn file_changes_are_picked_up_and_a_bad_file_is_counted_once() {
    let up = FakeUpstream::openai().await;
    let gw = gateway_with(&policy(&up, &["a"]), true).await;
    gw.write_policy("policy.yaml", &policy(&up, &["a", "b"]));
    eventually(async || model_ids(&gw).await == ["a", "b"]).await;
    gw.write_policy("policy.yaml", "routes: [this is: not valid");
    eventually(async || {
        gw.metric(r#"switchyard_policy_reloads_total{result="failure"}"#)
            .await
            == 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // several more polls
    assert_eq!(
        gw.metric(r#"switchyard_policy_reloads_total{result="failure"}"#)
            .await,
        1.0
    );
    assert_eq!(model_ids(&gw).await, ["a", "b"]);
    assert_eq!(gw.chat("b", "hi").await.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn reload_keeps_breaker_state_of_unchanged_providers() {
    let bad = FakeUpstream::start(|_, _| async { Reply::Json(500, json!({})) }).await;
    let yaml = |routes: &str| {
        format!(
            "{}routes:\n{routes}",
            providers_yaml(
                &[&bad],
                "    breaker: { failure_threshold: 1, open_for: 1h }\n"
            )
        )
    };
    let gw = gateway(&yaml(
        "  m:\n    targets: [{provider: p0}]\n    retry: {max_attempts: 1}\n",
    ))
    .await;
    assert_eq!(gw.chat("m", "x").await.status(), 502);
    assert_eq!(gw.chat("m", "x").await.status(), 503);
    gw.write_policy("policy.yaml", &yaml("  m:\n    targets: [{provider: p0}]\n    retry: {max_attempts: 1}\n  m2:\n    targets: [{provider: p0}]\n"));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(
        gw.chat("m2", "x").await.status(),
        503,
        "breaker still open after reload"
    );
    assert_eq!(bad.calls(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn removed_providers_leave_the_breaker_gauge() {
    let a = FakeUpstream::openai().await;
    let b = FakeUpstream::openai().await;
    let both = format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&a, &b], "")
    );
    let gw = gateway(&both).await;
    assert!(
        gw.metrics()
            .await
            .contains(r#"switchyard_breaker_state{provider="p1"} 0"#)
    );
    gw.write_policy(
        "policy.yaml",
        &format!(
            "{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
            providers_yaml(&[&a], "")
        ),
    );
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    let m = gw.metrics().await;
    assert!(m.contains(r#"switchyard_breaker_state{provider="p0"} 0"#));
    assert!(!m.contains(r#"provider="p1""#), "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_then_refuses_new_ones() {
    let up = FakeUpstream::start(|s, _| async move {
        Reply::After(
            Duration::from_millis(500),
            Box::new(Reply::Json(200, chat_reply(&s.body, "slow"))),
        )
    })
    .await;
    let gw = gateway(&policy(&up, &["m"])).await;
    let in_flight = gw.spawn_post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
    );
    eventually(async || up.calls() == 1).await;
    let base = gw.base.clone();
    gw.stop().await; // returns once drained
    let r = in_flight.await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("slow answered"));
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "listener closed"
    );
}

#[test]
fn check_prints_every_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "providers:\n  up:\n    kind: openai\n    base_url: ftp://x\n    api_key_env: SWITCHYARD_TEST_UNSET_VAR\n    latency: 5ms\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "routes:\n  r:\n    targets: [{provider: missing, weight: 0}]\n    retry: {max_attempts: 0, initial_backoff: 2x}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "routes:\n  s:\n    targetz: []\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(dir.path())
        .env_remove("SWITCHYARD_TEST_UNSET_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "a.yaml:4: providers.up.base_url",
        "a.yaml:5: providers.up.api_key_env: environment variable SWITCHYARD_TEST_UNSET_VAR is not set",
        "a.yaml:6: providers.up.latency: unknown field `latency` for kind openai, expected one of base_url,",
        "b.yaml:3: routes.r.targets[0].provider: unknown provider \"missing\"",
        "b.yaml:3: routes.r.targets[0].weight",
        "b.yaml:4: routes.r.retry.max_attempts",
        "b.yaml:4: routes.r.retry.initial_backoff",
        "c.yaml:3: routes.s.targetz: unknown field `targetz`, expected one of strategy, targets,",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let shipped = Command::new(BIN)
        .args(["check", "--policies"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .output()
        .unwrap();
    assert!(
        shipped.status.success(),
        "{}",
        String::from_utf8_lossy(&shipped.stderr)
    );
    assert!(String::from_utf8_lossy(&shipped.stdout).contains("OK"));
}

#[test]
fn check_lists_every_error_in_one_file_each_at_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("all.yaml"),
        "\
server:
  listn: 127.0.0.1:9
  max_body_bytes: lots
providers:
  a:
    kind: mock
    latncy: 5ms
  b:
    kind: mock
    failure_rate: 3
routes:
  r:
    strategy: fastest
    targets:
      - provider: a
      - provider: nowhere
    retry:
      max_attempts: 0
      initial_backoff: 2x
  s:
    targetz: []
",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("more.yaml"),
        "cache:\n  default_ttl: later\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let expected = [
        "all.yaml:2: server.listn: unknown field `listn`",
        "all.yaml:3: server.max_body_bytes: invalid u64",
        "all.yaml:7: providers.a.latncy: unknown field `latncy`",
        "all.yaml:21: routes.s.targetz: unknown field `targetz`",
        "more.yaml:2: cache.default_ttl: duration \"later\"",
        "all.yaml:10: providers.b.failure_rate: must be between 0 and 1",
        "all.yaml:13: routes.r.strategy: unknown strategy \"fastest\"",
        "all.yaml:16: routes.r.targets[1].provider: unknown provider \"nowhere\"",
        "all.yaml:18: routes.r.retry.max_attempts: must be between 1 and 10",
        "all.yaml:19: routes.r.retry.initial_backoff: duration \"2x\"",
        "all.yaml:20: routes.s.targets: needs at least one target",
    ];
    for needle in expected {
        let line = format!("error: {}/{needle}", dir.path().display());
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }
    assert!(
        err.contains(&format!("{} error(s) in", expected.len())),
        "{err}"
    );
}

/// Starts the binary on port 0 and returns it with its base URL.
fn spawn_binary(policies: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(policies)
        .env("RUST_LOG", "warn")
        .env("TEST_UPSTREAM_KEY", TEST_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    (child, base)
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn binary_serves_the_shipped_policies_offline_and_stops_on_sigterm() {
    let (mut child, base) = spawn_binary(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies"
    )));
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hello")
    );
    let inputs: Vec<String> = (0..20).map(|i| format!("doc {i}")).collect();
    let r = http
        .post(format!("{base}/v1/embeddings"))
        .json(&json!({"model": "text-embedding-3-small", "input": inputs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sighup_reloads_the_policy() {
    let up = FakeUpstream::openai().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = |routes: &[&str]| {
        policy(&up, routes).replace("reload_interval: 50ms", "reload_interval: 1h")
    };
    std::fs::write(dir.path().join("p.yaml"), yaml(&["one"])).unwrap();
    let (mut child, base) = spawn_binary(dir.path());
    std::fs::write(dir.path().join("p.yaml"), yaml(&["one", "two"])).unwrap();
    signal(&child, "-HUP");
    let http = reqwest::Client::new();
    let mut ok = false;
    for _ in 0..200 {
        let v: Value = http
            .get(format!("{base}/v1/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["data"].as_array().unwrap().len() == 2 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "two", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    signal(&child, "-TERM");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert!(ok, "SIGHUP did not reload");
    assert_eq!(status, 200);
    let auth = up.requests()[0].headers["authorization"].clone();
    assert_eq!(
        auth,
        format!("Bearer {TEST_KEY}").as_str(),
        "key read from the environment"
    );
}

/// The official OpenAI Python SDK against the binary on the shipped policies.
/// `.ci/run` installs the SDK; without it this test fails in CI and says
/// plainly that it skipped elsewhere.
#[tokio::test]
async fn official_openai_python_sdk_works_against_the_gateway() {
    if !python_module("openai") {
        return;
    }
    let (mut child, base) = spawn_binary(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies"
    )));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/openai_sdk.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(format!("{base}/v1"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    signal(&child, "-TERM");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `switchyard check` on `dir` with `env`; its exit code and stderr.
fn check_dir(dir: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("check")
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn check_refuses_an_embeddings_route_listing_a_chat_only_provider() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SWITCHYARD_TEST_ANTHROPIC", "sk-ant-x")];
    let providers = "providers:\n  claude:\n    kind: anthropic\n    api_key_env: SWITCHYARD_TEST_ANTHROPIC\n  emb:\n    kind: mock\n";
    let docs = "routes:\n  docs:\n    endpoints: [embeddings]\n    targets:\n      - provider: emb\n      - provider: claude\n";
    let mixed =
        "  mixed:\n    endpoints: [chat, embeddings, images]\n    targets: [{provider: emb}]\n";
    std::fs::write(
        dir.path().join("a.yaml"),
        format!("{providers}{docs}{mixed}"),
    )
    .unwrap();
    let (code, err) = check_dir(dir.path(), &env);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("a.yaml:14: routes.mixed.endpoints[2]: unknown endpoint \"images\""),
        "{err}"
    );
    // Once the unknown endpoint is gone, the capability check runs.
    std::fs::write(dir.path().join("a.yaml"), format!("{providers}{docs}")).unwrap();
    let (code, err) = check_dir(dir.path(), &env);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("a.yaml:12: routes.docs.targets[1]: provider claude (kind anthropic) cannot serve embeddings"),
        "{err}"
    );
}

/// `THP_enabled` in `/proc/<pid>/status`: whether the process may get
/// transparent huge pages (`None` where the kernel does not say).
fn thp_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    Some(line.split_whitespace().nth(1)? != "0")
}

#[tokio::test]
async fn the_binary_turns_transparent_huge_pages_off_unless_told_to_keep_them() {
    let Some(own) = thp_enabled(std::process::id()) else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true: the kernel must show THP_enabled in /proc/<pid>/status"
        );
        skipped("this kernel does not show THP_enabled in /proc/<pid>/status");
        return;
    };
    let up = FakeUpstream::openai().await;
    let yaml = policy(&up, &["m"]);
    let off = Served::with_policy(&yaml, &[]).await;
    assert_eq!(thp_enabled(off.pid()), Some(false));
    let kept = Served::with_policy(&yaml, &[("SWITCHYARD_HUGE_PAGES", "true")]).await;
    // Left as the process that started it had it.
    assert_eq!(thp_enabled(kept.pid()), Some(own));
    // The way operators write a switch in an environment file.
    let one = Served::with_policy(&yaml, &[("SWITCHYARD_HUGE_PAGES", "1")]).await;
    assert_eq!(thp_enabled(one.pid()), Some(own));
    let zero = Served::with_policy(&yaml, &[("SWITCHYARD_HUGE_PAGES", "0")]).await;
    assert_eq!(thp_enabled(zero.pid()), Some(false));
    off.stop().await;
    kept.stop().await;
    one.stop().await;
    zero.stop().await;
}
