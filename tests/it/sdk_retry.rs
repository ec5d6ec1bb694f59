//! Upstream calls per failing client call through the official OpenAI
//! Python SDK with its defaults (`max_retries=2`): the gateway's final 5xx
//! says `x-should-retry: false`, so the SDK does not multiply the gateway's
//! own retries, and the route's retry budget caps those.
//!
//! Needs python3 with the `openai` package (`.ci/run` installs it). Missing,
//! the test fails in CI (`CI=true`) and says plainly that it skipped elsewhere.

use crate::common;

use std::process::Command;

use common::faults::*;
use common::*;
use serde_json::Value;

/// Makes N chat calls with the SDK's default retries; prints how they ended.
const SCRIPT: &str = r#"
import json, sys
import openai
from openai import OpenAI

base, n = sys.argv[1], int(sys.argv[2])
client = OpenAI(base_url=base, api_key="sdk-client")
assert client.max_retries == 2, client.max_retries
raised, statuses = 0, []
for i in range(n):
    try:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"sdk call #{i}#"}])
        statuses.append(200)
    except openai.APIStatusError as e:
        raised += 1
        statuses.append(e.status_code)
    except openai.APIError as e:
        raised += 1
        statuses.append(repr(e))
print(json.dumps({"raised": raised, "statuses": statuses}))
"#;

const CALLS: usize = 8;
const MAX_ATTEMPTS: usize = 3;
const TARGETS: usize = 2;

fn sdk_available() -> bool {
    python_module("openai")
}

#[tokio::test]
async fn the_official_sdk_does_not_multiply_calls_to_a_failing_route() {
    if !sdk_available() {
        return;
    }
    let (p0, p1) = (
        FaultyUpstream::start("p0").await,
        FaultyUpstream::start("p1").await,
    );
    p0.set(Fault::Status(500));
    p1.set(Fault::Status(500));
    // Budget (tower's): a reserve of min_per_second x window = 10 retries,
    // plus 10% of the calls; each failing call wants 2 retries per target.
    let no_breaker = "    breaker: { failure_threshold: 1000, open_for: 1s }\n";
    let retry = format!(
        "    retry: {{ max_attempts: {MAX_ATTEMPTS}, initial_backoff: 1ms, max_backoff: 2ms,\n\
         \x20            budget: {{ ratio: 0.1, min_per_second: 1, window: 10s }} }}\n"
    );
    let gw = gateway(&format!(
        "{}routes:\n{}",
        faulty_providers_yaml(&[&p0, &p1], &[no_breaker, no_breaker]),
        route_yaml("m", &["p0", "p1"], &retry)
    ))
    .await;

    let base = format!("{}/v1", gw.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", SCRIPT, &base, &CALLS.to_string()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    println!("SDK report: {report}");
    assert_eq!(report["raised"], CALLS, "every call failed: {report}");

    let seen = gw
        .metric(r#"switchyard_requests_total{endpoint="chat",route="m",status="502"}"#)
        .await;
    let counts: Vec<usize> = (0..CALLS)
        .map(|i| {
            let tag = format!("sdk call #{i}#");
            p0.calls_mentioning(&tag) + p1.calls_mentioning(&tag)
        })
        .collect();
    println!(
        "gateway saw {seen} requests for {CALLS} SDK calls; upstream calls per SDK call: {counts:?} \
         (at most {MAX_ATTEMPTS} attempts x {TARGETS} targets = {})",
        MAX_ATTEMPTS * TARGETS
    );
    assert_eq!(seen, CALLS as f64, "the SDK retried the gateway's 502s");
    assert!(
        counts.iter().all(|&c| c <= MAX_ATTEMPTS * TARGETS),
        "{counts:?}"
    );
    assert_eq!(counts[0], MAX_ATTEMPTS * TARGETS, "{counts:?}");
    assert_eq!(
        counts[CALLS - 1],
        TARGETS,
        "once the budget is spent each call tries each target once: {counts:?}"
    );

    // What the SDK read: the final error says not to retry.
    let r = gw.chat("m", "one more").await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-should-retry"], "false");
    error_of(r).await;
    gw.stop().await;
}
