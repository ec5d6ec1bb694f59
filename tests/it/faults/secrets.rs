//! Secrets scrubbed on every path: the provider key echoed by an upstream
//! raw, `\u`-escaped, URL-encoded or in base64, in error bodies of any
//! status, in 200 bodies, in SSE events and in headers, reaches no client
//! and no log line; a key split over two chunks of a stream never reaches
//! the client whole.

use crate::common;

use std::time::Duration;

use common::faults::*;
use common::logs::capture_logs;
use common::*;
use serde_json::json;

#[tokio::test]
async fn an_echoed_key_in_any_encoding_and_any_place_reaches_no_client_and_no_log() {
    let logs = capture_logs();
    let (p0, _p1, gw) = pair(NO_BREAKER, &route_yaml("m", &["p0"], ONE_TRY)).await;
    let requests = [
        ("/v1/chat/completions", chat_body("m", "hi", false)),
        ("/v1/chat/completions", chat_body("m", "hi", true)),
        ("/v1/embeddings", json!({"model": "m", "input": ["x"]})),
    ];
    let places = [
        Place::ErrorBody(400),
        Place::ErrorBody(401),
        Place::ErrorBody(404),
        Place::ErrorBody(429),
        Place::ErrorBody(500),
        Place::ErrorBody(503),
        Place::Body200,
        Place::SseEvent,
        Place::Header,
    ];
    let mut cases = 0;
    for encoding in Encoding::ALL {
        for place in places {
            p0.set(Fault::Echo(encoding, place));
            for (path, body) in &requests {
                let (status, headers, text) = whole(gw.post(path, body.clone()).await).await;
                let seen = format!("{headers}\n{text}");
                assert_eq!(
                    key_leak_in(&seen),
                    None,
                    "{encoding:?} {place:?} {body}: {status}\n{seen}"
                );
                // Every answer is still well formed.
                assert!(status == 200 || text.contains("\"error\""), "{seen}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 108);
    assert_eq!(p0.calls(), cases, "every case reached the upstream");
    let logged = logs.text();
    assert!(logged.contains("target failed"), "logs were captured");
    assert_eq!(key_leak_in(&logged), None, "{logged}");
    gw.stop().await;
}

#[tokio::test]
async fn a_key_split_over_two_chunks_of_a_stream_never_reaches_the_client_whole() {
    let head = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
                \"choices\":[{\"index\":0,\"delta\":{\"content\":\"the key is ";
    let tail = "\"},\"finish_reason\":null}]}\n\n";
    // Raw, and in base64 (found only whole: the halves alone match nothing).
    for form in [
        Encoding::Raw.apply(TEST_KEY),
        Encoding::Base64.apply(TEST_KEY),
    ] {
        let event = format!("{head}{form}{tail}");
        for cut in [3, 11, form.len() / 2, form.len() - 2] {
            let (a, b) = event.split_at(head.len() + cut);
            let (a, b) = (a.to_string(), b.to_string());
            let up = FakeUpstream::start(move |_, _| {
                let events = vec![
                    a.clone(),
                    b.clone(),
                    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                        .to_string(),
                    "data: [DONE]\n\n".to_string(),
                ];
                // Apart in time, so they arrive as two chunks.
                async move { Reply::Sse(events, Duration::from_millis(30)) }
            })
            .await;
            let gw = gateway(&format!(
                "{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
                providers_yaml(&[&up], "")
            ))
            .await;
            let r = gw
                .post("/v1/chat/completions", chat_body("m", "hi", true))
                .await;
            let p = read_sse(r).await;
            assert!(p.done && p.errors.is_empty(), "cut {cut}: {}", p.raw);
            assert_eq!(p.content, "the key is ***", "{form} cut at {cut}");
            assert_eq!(key_leak_in(&p.raw), None, "{}", p.raw);
            gw.stop().await;
        }
    }
}
