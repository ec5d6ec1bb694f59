//! The chaos run for streams and secrets, at the shipped default timeouts:
//! p0 cycles through every fault that strikes a stream (before content,
//! after content, a first-event error, a stall) and every key echo (raw,
//! escaped, URL-encoded, base64; error bodies of several statuses, 200
//! bodies, SSE events, headers), with healthy periods between, while
//! concurrent clients send cached and uncached chat, embeddings and
//! streams on routes with `stream_continuation`; p1 stays healthy. No
//! client sees a failure, nothing bad is cached, and no response or log
//! line holds the key in any form.
//!
//! Faults whose cost is a timeout (hang, slow first byte, trickle) are left
//! to the timeout tests: at the shipped defaults each would take tens of
//! seconds. p0's timeouts here are the shipped defaults; its breaker is set
//! to reopen fast so that its probes keep meeting the faults.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::faults::*;
use common::logs::capture_logs;
use common::*;
use serde_json::{Value, json};
use tokio::time::Instant;

const STREAMS: &str = "    stream_continuation: true\n\
                       \x20   stream_min_rate: { tokens_per_second: 2, window: 1s }\n";

/// What `kind` sends (as `mixed_request` does), checked like a client
/// would, and for the key in any form in its headers and body.
async fn checked(http: &reqwest::Client, base: &str, kind: usize, n: usize) -> Result<(), String> {
    let (path, body) = match kind % 6 {
        0 => ("/v1/chat/completions", cached_question(n % 8)),
        1 => (
            "/v1/chat/completions",
            chat_body("plain", &format!("q{n}"), false),
        ),
        2 => (
            "/v1/embeddings",
            json!({"model": "cached", "input": embedding_inputs(n)}),
        ),
        k => {
            let route = if k == 3 { "cached" } else { "plain" };
            let text = if k == 3 {
                format!("s{}", n % 8)
            } else {
                format!("s{n}")
            };
            ("/v1/chat/completions", chat_body(route, &text, true))
        }
    };
    let r = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{body}: {e}"))?;
    let (status, headers, text) = whole(r).await;
    if let Some(leak) = key_leak_in(&format!("{headers}\n{text}")) {
        return Err(format!("{body}: leaks {leak}: {headers}\n{text}"));
    }
    let fail = || Err(format!("{body}: {status} {text:?}"));
    if status != 200 {
        return fail();
    }
    let ok = if body["stream"] == true {
        let p = parse_sse(&text);
        p.invalid.is_empty()
            && p.errors.is_empty()
            && p.done
            && (p.content == "p0 answered" || p.content == "p1 answered")
    } else if path.ends_with("/embeddings") {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let inputs = embedding_inputs(n);
        v["data"].as_array().is_some_and(|d| {
            d.len() == 2
                && d.iter().zip(&inputs).all(|(e, input)| {
                    let got: Option<Vec<f32>> = serde_json::from_value(e["embedding"].clone()).ok();
                    got == Some(expected_vector(&json!(input)))
                })
        })
    } else {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let content = v["choices"][0]["message"]["content"].as_str();
        content == Some("p0 answered") || content == Some("p1 answered")
    };
    if ok { Ok(()) } else { fail() }
}

#[tokio::test]
async fn a_cycling_fault_at_default_timeouts_costs_no_client_anything_and_leaks_nothing() {
    let logs = capture_logs();
    let p0_extra = "    breaker: { failure_threshold: 3, open_for: 50ms, half_open_probes: 4 }\n";
    let retry = "    retry: { max_attempts: 2, initial_backoff: 5ms, max_backoff: 20ms }\n";
    let routes = route_yaml(
        "cached",
        &["p0", "p1"],
        &format!("{retry}{STREAMS}    cache: {{ enabled: true }}\n"),
    ) + &route_yaml("plain", &["p0", "p1"], &format!("{retry}{STREAMS}"));
    let (p0, _p1, gw) = pair(p0_extra, &routes).await;
    use Encoding::*;
    use Fault::*;
    let same = |f: Fault| (f.clone(), f);
    // A stall only costs a stream (the guard cuts it); a plain request meets
    // a reset instead of waiting out the shipped 30s idle timeout.
    let stream_only = |f: Fault| (Reset, f);
    let phases = [
        same(Healthy),
        same(Status(500)),
        same(Status(503)),
        same(RateLimited {
            retry_after_secs: 5,
        }),
        same(Reset),
        same(Healthy),
        same(Html200),
        same(MalformedJson200),
        same(WrongShape200),
        same(StreamCutBeforeContent),
        same(FirstEventError),
        same(Healthy),
        same(StreamCutMidEvent),
        same(StreamNoDone),
        stream_only(StreamStall),
        same(Healthy),
        same(Echo(Raw, Place::ErrorBody(401))),
        same(Echo(Escaped, Place::ErrorBody(429))),
        same(Echo(UrlEncoded, Place::ErrorBody(500))),
        same(Echo(Base64, Place::ErrorBody(503))),
        same(Echo(Raw, Place::Body200)),
        same(Echo(Escaped, Place::Body200)),
        same(Echo(UrlEncoded, Place::SseEvent)),
        same(Echo(Base64, Place::SseEvent)),
        same(Echo(Escaped, Place::Header)),
        same(Echo(Base64, Place::Header)),
        same(Healthy),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let clients: Vec<_> = (0..6)
        .map(|id| {
            let (http, base) = (http.clone(), gw.base.clone());
            let (stop, failures, sent) = (stop.clone(), failures.clone(), sent.clone());
            tokio::spawn(async move {
                for i in 0..2000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    if let Err(e) = checked(&http, &base, id + i, n).await {
                        failures.lock().unwrap().push(e);
                    }
                }
            })
        })
        .collect();

    let ms = Duration::from_millis;
    let (start, mut summary) = (Instant::now(), vec![]);
    for (plain, streams) in phases.iter().cloned() {
        p0.set_split(plain.clone(), streams);
        let from = p0.calls();
        let t = Instant::now();
        p0.wait_until(ms(5000), |r| {
            let streams = r[from..].iter().filter(|r| r.stream).count();
            streams >= 3 && r.len() - from - streams >= 3
        })
        .await;
        summary.push(format!(
            "{plain:?}: {} in {:?}",
            p0.calls() - from,
            t.elapsed()
        ));
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let total = sent.load(Ordering::SeqCst);
    println!(
        "{total} requests in {:?}, {} failed; p0 per phase: {summary:?}",
        start.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    // Every fault met p0's requests of both kinds. (When one did not, the
    // gateway's own account of p0 says why: breaker, limits, outcomes.)
    let seen = p0.received();
    let p0_metrics = || async {
        let text = gw.metrics().await;
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("provider=\"p0\""))
            .collect();
        lines.join("\n")
    };
    for (plain, streams) in &phases {
        for (fault, stream) in [(plain, false), (streams, true)] {
            let hit = seen.iter().any(|r| &r.fault == fault && r.stream == stream);
            if !hit {
                panic!(
                    "no stream={stream} request met {fault:?}; p0 per phase: {summary:?}\n{}",
                    p0_metrics().await
                );
            }
        }
    }
    // Streams broken after content were continued, not failed.
    let metrics = gw.metrics().await;
    let continuations: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_stream_continuations_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(continuations > 0.0, "{metrics}");
    assert!(
        !metrics.contains("switchyard_stream_interruptions_total{"),
        "{metrics}"
    );

    // Nothing bad was cached: p0 healthy again, every cached answer valid.
    p0.set(Healthy);
    for n in 0..8 {
        checked(&http, &gw.base, 0, n).await.unwrap();
        checked(&http, &gw.base, 3, n).await.unwrap();
    }
    for n in 0..12 {
        checked(&http, &gw.base, 2, n).await.unwrap();
    }
    gw.stop().await;
    let logged = logs.text();
    assert!(logged.contains("target failed"), "the logs were captured");
    assert_eq!(key_leak_in(&logged), None, "a log line leaks the key");
}
