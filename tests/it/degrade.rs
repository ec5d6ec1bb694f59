//! Graceful degradation when every target fails (`cache.stale_if_error`):
//! embeddings cached earlier are still answered past their TTL, marked
//! `stale` and counted, on by default; a fan-out whose sub-batch fails
//! everywhere answers that sub-batch from the cache when every one of its
//! inputs is there, and fails rather than leave a hole; chat opts in.
//! With it off, the same requests fail as before.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::faults::sse_events;
use common::*;
use serde_json::{Value, json};

/// The TTL of every route here; the tests wait it out (the expiry itself is
/// what they are about).
const TTL: &str = "150ms";

/// An upstream that answers as [`default_reply`] (streams as SSE) while
/// up, and 503 for
/// every request while down, or only for requests mentioning `poisoned`.
async fn switchable(down: Arc<AtomicBool>, poisoned: Option<&'static str>) -> FakeUpstream {
    FakeUpstream::start(move |s, _| {
        let fail =
            down.load(Ordering::SeqCst) && poisoned.is_none_or(|p| s.body.to_string().contains(p));
        async move {
            if fail {
                Reply::Json(
                    503,
                    json!({"error": {"message": "down", "type": "server_error"}}),
                )
            } else if s.body["stream"] == true {
                Reply::Sse(sse_events(&s.body["model"], "fake"), Duration::ZERO)
            } else {
                default_reply(&s)
            }
        }
    })
    .await
}

fn route(name: &str, cache: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n    retry: {{ max_attempts: 1 }}\n\
         \x20   cache: {{ enabled: true, ttl: {TTL}{cache} }}\n{extra}"
    )
}

fn vectors(v: &Value) -> Vec<Value> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"].clone())
        .collect()
}

async fn expire() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn embeddings_cached_earlier_are_answered_stale_when_every_target_is_down() {
    let down = Arc::new(AtomicBool::new(false));
    let (p0, p1) = (
        switchable(Arc::clone(&down), None).await,
        switchable(Arc::clone(&down), None).await,
    );
    let routes = route("emb", "", "") + &route("strict", ", stale_if_error: false", "");
    let gw = gateway(&format!(
        "{}routes:\n{routes}",
        providers_yaml(&[&p0, &p1], "")
    ))
    .await;
    let mut fresh = Vec::new();
    for model in ["emb", "strict"] {
        let r = gw.embed(model, json!(["a", "b"])).await;
        assert_eq!(r.headers()["x-switchyard-cache"], "miss");
        fresh.push(vectors(&r.json().await.unwrap()));
    }
    expire().await;
    down.store(true, Ordering::SeqCst);
    let r = gw.embed("emb", json!(["b", "a", "b"])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-cache"], "stale");
    assert_eq!(r.headers()["x-switchyard-cached-inputs"], "3");
    let v: Value = r.json().await.unwrap();
    let got = vectors(&v);
    assert_eq!(
        got,
        vec![
            fresh[0][1].clone(),
            fresh[0][0].clone(),
            fresh[0][1].clone()
        ]
    );
    assert_eq!(v["usage"]["prompt_tokens"], 0, "nothing was spent");
    let stale = r#"switchyard_cache_stale_served_total{kind="embeddings",route="emb"}"#;
    assert_eq!(gw.metric(stale).await, 2.0, "per item");
    // An input never cached: no answer with a hole in it.
    let r = gw.embed("emb", json!(["a", "never seen"])).await;
    assert_eq!(r.status(), 502);
    assert_eq!(error_of(r).await["code"], "upstream_error");
    // Off: the same request fails as it always did.
    let r = gw.embed("strict", json!(["a", "b"])).await;
    assert_eq!(r.status(), 502);
    // Up again: fresh answers, and they are cached again.
    down.store(false, Ordering::SeqCst);
    let r = gw.embed("emb", json!(["a", "b"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    assert_eq!(vectors(&r.json().await.unwrap()), fresh[0]);
    let r = gw.embed("emb", json!(["a", "b"])).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    gw.stop().await;
}

#[tokio::test]
async fn a_fan_out_answers_a_sub_batch_that_failed_everywhere_from_the_cache_or_not_at_all() {
    let down = Arc::new(AtomicBool::new(false));
    // Down only for sub-batches holding "old" inputs.
    let (p0, p1) = (
        switchable(Arc::clone(&down), Some("old")).await,
        switchable(Arc::clone(&down), Some("old")).await,
    );
    let one = "    fanout: { max_concurrency: 4 }\n";
    let gw = gateway(&format!(
        "{}routes:\n{}",
        providers_yaml(&[&p0, &p1], "    max_batch_inputs: 1\n"),
        route("emb", "", one)
    ))
    .await;
    let r = gw.embed("emb", json!(["old 1", "old 2"])).await;
    let kept = vectors(&r.json().await.unwrap());
    expire().await;
    down.store(true, Ordering::SeqCst);
    let inputs = json!(["old 1", "new", "old 2"]);
    let r = gw.embed("emb", inputs.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-cache"], "stale");
    let v: Value = r.json().await.unwrap();
    let got = vectors(&v);
    assert_eq!(got[0], kept[0]);
    assert_eq!(got[2], kept[1]);
    let want: Vec<f32> = expected_vector(&json!("new"));
    assert_eq!(got[1], json!(want), "the healthy sub-batch was fetched");
    // A failed sub-batch with an input never cached fails the request.
    let r = gw.embed("emb", json!(["old 1", "old 3", "new"])).await;
    assert_eq!(r.status(), 502);
    gw.stop().await;
}

#[tokio::test]
async fn chat_answers_stale_only_where_the_route_opts_in() {
    let down = Arc::new(AtomicBool::new(false));
    let (p0, p1) = (
        switchable(Arc::clone(&down), None).await,
        switchable(Arc::clone(&down), None).await,
    );
    let routes = route("opted", ", stale_if_error: 1h", "") + &route("plain", "", "");
    let gw = gateway(&format!(
        "{}routes:\n{routes}",
        providers_yaml(&[&p0, &p1], "")
    ))
    .await;
    let stream = |model: &str| json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "streamed"}]});
    let mut answers = Vec::new();
    for model in ["opted", "plain"] {
        let r = gw.chat(model, "same question").await;
        assert_eq!(r.headers()["x-switchyard-cache"], "miss");
        answers.push(r.json::<Value>().await.unwrap());
    }
    // A whole answer stored for the opted route serves its streams too.
    expire().await;
    down.store(true, Ordering::SeqCst);
    let r = gw.chat("opted", "same question").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-cache"], "stale");
    assert_eq!(r.json::<Value>().await.unwrap(), answers[0]);
    let r = gw.chat("plain", "same question").await;
    assert_eq!(r.status(), 502, "chat is opt-in");
    let stale = r#"switchyard_cache_stale_served_total{kind="chat",route="opted"}"#;
    assert_eq!(gw.metric(stale).await, 1.0);
    // Streams: a stored stream is replayed stale the same way.
    down.store(false, Ordering::SeqCst);
    let r = gw.post("/v1/chat/completions", stream("opted")).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let first = r.text().await.unwrap();
    expire().await;
    down.store(true, Ordering::SeqCst);
    let r = gw.post("/v1/chat/completions", stream("opted")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-cache"], "stale");
    assert_eq!(r.text().await.unwrap(), first);
    let r = gw.post("/v1/chat/completions", stream("plain")).await;
    assert_eq!(r.status(), 502);
    gw.stop().await;
}
