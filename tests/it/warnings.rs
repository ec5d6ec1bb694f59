//! Logs under failure: a warning that would repeat for every request is
//! written at most once a second, with the count of those held back. Here
//! `fail_closed` refusals while Redis is unreachable (nothing listens on
//! its port, so no redis-server is needed), captured per test thread as
//! `edge` does.

use crate::common;
use crate::common::logs::capture_logs;

use std::time::Duration;

use common::faults::{Fault, FaultyUpstream, faulty_providers_yaml, route_yaml};
use common::*;
use serde_json::json;
use tokio::time::Instant;

const SECRET: &str = "sk-warned-0123456789abcdef0123456789";

/// `suppressed=N` of a log line.
fn suppressed(line: &str) -> u64 {
    line.split("suppressed=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no suppressed count in {line}"))
}

#[tokio::test]
async fn fail_closed_refusals_are_logged_at_most_once_a_second_with_a_count() {
    let logs = capture_logs();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", dead.local_addr().unwrap());
    drop(dead); // nothing listens there now
    let yaml = "providers:\n  m:\n    kind: mock\nroutes:\n  chat:\n    targets: [{provider: m}]\n\
                keys:\n  team:\n    secret_env: TEAM_KEY\n    rpm: 100000\n\
                state:\n  backend: redis\n  url_env: REDIS_URL\n  on_error: fail_closed\n  timeout: 100ms\n";
    let gw = gateway_env(yaml, &[("TEAM_KEY", SECRET), ("REDIS_URL", &url)]).await;
    let start = Instant::now();
    let mut refused = 0u64;
    while start.elapsed() < Duration::from_millis(2500) {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(SECRET)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(error_of(r).await["code"], "state_unavailable");
        refused += 1;
    }
    let lines = logs.lines_with("limits and budgets could not be checked");
    println!("{refused} refusals in 2.5s: {lines:#?}");
    assert!(refused > 50, "only {refused} requests made");
    assert!(
        (2..=3).contains(&lines.len()),
        "one line a second over 2.5s, not one per refusal: {} lines",
        lines.len()
    );
    let held: u64 = lines.iter().map(|l| suppressed(l)).sum();
    assert_eq!(suppressed(&lines[0]), 0);
    assert!(suppressed(&lines[1]) > 0, "{}", lines[1]);
    assert!(
        held + lines.len() as u64 <= refused && held + lines.len() as u64 > refused / 3,
        "{held} held back + {} lines for {refused} refusals",
        lines.len()
    );
    // The store's own warning is held to the same pace.
    let store = logs.lines_with("state store: Redis call failed");
    assert!((1..=3).contains(&store.len()), "{store:#?}");
    assert!(!logs.text().contains(SECRET));
    gw.stop().await;
}

#[tokio::test]
async fn streams_breaking_mid_way_are_logged_at_most_once_a_second_per_provider() {
    let logs = capture_logs();
    let torn = FaultyUpstream::start("torn").await;
    torn.set(Fault::StreamCutMidEvent);
    let yaml = format!(
        "{}routes:\n{}",
        faulty_providers_yaml(&[&torn], &[]),
        route_yaml("torn", &["p0"], ""),
    );
    let gw = gateway(&yaml).await;
    let start = Instant::now();
    let mut broken = 0u64;
    while start.elapsed() < Duration::from_millis(2500) {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .json(&json!({"model": "torn", "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the stream started with content");
        let text = r.text().await.unwrap();
        assert!(text.contains("stream_interrupted"), "{text}");
        broken += 1;
    }
    let lines = logs.lines_with("upstream stream failed mid-way");
    println!("{broken} broken streams in 2.5s: {} lines", lines.len());
    assert!(broken > 20, "only {broken} streams made");
    assert!(
        (2..=3).contains(&lines.len()),
        "one line a second over 2.5s, not one per stream: {lines:#?}"
    );
    // Breaks after the last line are counted in the next one.
    let held: u64 = lines.iter().map(|l| suppressed(l)).sum();
    assert_eq!(suppressed(&lines[0]), 0);
    assert!(
        held + lines.len() as u64 <= broken && held + lines.len() as u64 > broken / 3,
        "{held} held back + {} lines for {broken} breaks",
        lines.len()
    );
    let interrupted = "switchyard_stream_interruptions_total{provider=\"p0\",route=\"torn\"}";
    assert_eq!(
        gw.metric(interrupted).await,
        broken as f64,
        "each is counted"
    );
    gw.stop().await;
}
