//! The official OpenAI Python SDK's own retries (its defaults,
//! `max_retries=2`) against the gateway. Upstream calls per failing client
//! call: the gateway's final 5xx says `x-should-retry: false`, so the SDK
//! does not multiply the gateway's own retries, and the route's retry
//! budget caps those. A burst of 200 concurrent calls from one key at the
//! shipped limits: the gateway's 429s carry `retry-after-ms` hints spread
//! over the backlog (each its own, jittered), so the SDK's retries absorb
//! the whole burst.
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

/// Fires N concurrent chat calls from one key through the SDK at its
/// defaults (`max_retries=2`, which follow `retry-after-ms`); prints how
/// they ended.
const BURST_SCRIPT: &str = r#"
import asyncio, json, sys
import openai
from openai import AsyncOpenAI

base, n, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]

async def main():
    client = AsyncOpenAI(base_url=base, api_key="sk-one-key-for-the-whole-burst")
    assert client.max_retries == 2, client.max_retries
    async def one(i):
        try:
            await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"burst call {i}"}])
            return 200
        except openai.APIStatusError as e:
            return e.status_code
        except openai.APIError as e:
            return repr(e)
    statuses = await asyncio.gather(*(one(i) for i in range(n)))
    print(json.dumps({"ok": sum(1 for s in statuses if s == 200),
                      "failed": [s for s in statuses if s != 200]}))

asyncio.run(main())
"#;

const BURST: usize = 200;

#[tokio::test]
async fn the_sdks_own_retries_absorb_a_burst_of_200_calls_at_the_shipped_limits() {
    if !sdk_available() {
        return;
    }
    // The shipped policies: per client 50/s, burst 100, so half the burst
    // is refused at once and the rest must come back spread over 2s.
    let gw = shipped_gateway().await;
    let base = format!("{}/v1", gw.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", BURST_SCRIPT, &base, &BURST.to_string(), "gpt-4o-mini"])
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
    let refused = gw
        .metric(r#"switchyard_rate_limited_total{scope="client"}"#)
        .await;
    println!("SDK report: {report}; the gateway refused {refused} calls with 429");
    // The calls reach the gateway over some milliseconds while the bucket
    // refills, so not quite half is refused; without spread hints most of
    // those would be refused again at each retry and fail.
    assert!(
        refused >= (BURST / 4) as f64,
        "the burst was hardly limited: {refused} refusals"
    );
    assert_eq!(
        report["ok"], BURST,
        "the SDK's retries did not absorb the burst: {report}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn each_429_of_a_burst_tells_its_own_later_time() {
    let gw = shipped_gateway().await;
    let url = format!("{}/v1/chat/completions", gw.base);
    let started = tokio::time::Instant::now();
    let calls = (0..300).map(|i| {
        let request = gw
            .http
            .post(&url)
            .bearer_auth("sk-raw-burst")
            .json(&serde_json::json!({"model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": format!("raw {i}")}]}));
        async move { request.send().await.unwrap() }
    });
    let answers = futures_util::future::join_all(calls).await;
    let took = started.elapsed().as_millis() as u64;
    let mut hints: Vec<u64> = answers
        .iter()
        .filter(|r| r.status() == 429)
        .map(|r| {
            let ms: u64 = r.headers()["retry-after-ms"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let secs: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(secs * 1000 >= ms && secs >= 1, "{secs}s vs {ms}ms");
            ms
        })
        .collect();
    // 100 pass at once (the burst), a few more as the bucket refills
    // (50/s) while the calls arrive; the rest are refused.
    let refused = hints.len() as u64;
    assert!(refused >= 100, "{refused} refused in {took}ms");
    hints.sort_unstable();
    // Each refusal's slot (arrival + hint) is one refill (20ms) after the
    // previous one's, and they all arrived within `took`.
    let last = hints[hints.len() - 1];
    assert!(
        last + took >= (refused - 1) * 20,
        "{refused} refusals within {took}ms, the last told {last}ms: {hints:?}"
    );
    assert!(
        hints[0] <= 60,
        "the first refused waits about one slot: {hints:?}"
    );
    let mut distinct = hints.clone();
    distinct.dedup();
    assert!(
        distinct.len() as u64 >= refused * 9 / 10,
        "hints are jittered per answer: {hints:?}"
    );
    gw.stop().await;
}
