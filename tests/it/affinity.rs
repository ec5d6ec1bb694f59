//! Prompt-cache affinity and per-request routing overrides over real HTTP:
//! a conversation stays on one target across its turns (the provider's
//! prompt cache stays warm, and the cached input tokens it reports show per
//! route), moves when that target fails, and keys allowed to may steer a
//! request with headers.

use std::sync::{Arc, Mutex};

use crate::common;

use common::*;
use serde_json::{Value, json};

/// An OpenAI fake with a prompt cache: a `user` seen before gets its prompt
/// tokens back as cached (`prompt_tokens_details.cached_tokens`).
async fn caching(name: &'static str, failing: Arc<Mutex<bool>>) -> FakeUpstream {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    FakeUpstream::start(move |s, _| {
        let (seen, failing) = (Arc::clone(&seen), Arc::clone(&failing));
        async move {
            if *failing.lock().unwrap() {
                return Reply::Json(503, json!({"error": {"message": "down", "type": "server_error"}}));
            }
            let user = s.body["user"].as_str().unwrap_or_default().to_string();
            let warm = {
                let mut seen = seen.lock().unwrap();
                let warm = seen.contains(&user);
                if !warm {
                    seen.push(user);
                }
                warm
            };
            let mut reply = chat_reply(&s.body, name);
            reply["usage"] = json!({"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102,
                                    "prompt_tokens_details": {"cached_tokens": if warm { 100 } else { 0 }}});
            Reply::Json(200, reply)
        }
    })
    .await
}

fn turn(user: &str, n: usize) -> Value {
    let mut messages = vec![json!({"role": "system", "content": "You are terse."})];
    for i in 0..=n {
        messages.push(json!({"role": "user", "content": format!("question {i}")}));
    }
    json!({"model": "chat", "user": user, "messages": messages})
}

#[tokio::test]
async fn a_conversation_stays_on_one_target_and_moves_when_it_fails() {
    let down: Vec<Arc<Mutex<bool>>> = (0..3).map(|_| Arc::default()).collect();
    let ups = [
        caching("p0", Arc::clone(&down[0])).await,
        caching("p1", Arc::clone(&down[1])).await,
        caching("p2", Arc::clone(&down[2])).await,
    ];
    let gw = gateway(&format!(
        "{}routes:\n  chat:\n    strategy: weighted\n    retry: {{max_attempts: 1}}\n    \
         affinity: {{by: user}}\n    targets: [{{provider: p0}}, {{provider: p1}}, {{provider: p2}}]\n  \
         spread:\n    strategy: weighted\n    targets: [{{provider: p0}}, {{provider: p1}}, {{provider: p2}}]\n",
        providers_yaml(&[&ups[0], &ups[1], &ups[2]], "")
    ))
    .await;
    let served = async |body: Value| {
        let r = gw.post("/v1/chat/completions", body).await;
        assert_eq!(r.status(), 200);
        r.headers()["x-switchyard-provider"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let first = served(turn("alice", 0)).await;
    for n in 1..20 {
        assert_eq!(served(turn("alice", n)).await, first, "turn {n}");
    }
    // Other conversations still spread (weighted over three targets).
    let mut others = std::collections::BTreeSet::new();
    for u in 0..30 {
        others.insert(served(turn(&format!("user-{u}"), 0)).await);
    }
    assert!(others.len() >= 2, "{others:?}");
    // The provider's cache was warm for 19 of alice's 20 turns: reported per route.
    let cached = |p: &str| {
        format!(
            r#"switchyard_tokens_total{{key="_unknown",kind="cached",provider="{p}",route="chat"}}"#
        )
    };
    assert!(gw.metric(&cached(&first)).await >= 1900.0);
    // Without affinity the same conversation is spread, and mostly cold.
    let mut spread = std::collections::BTreeSet::new();
    for n in 0..20 {
        let mut body = turn("bob", n);
        body["model"] = json!("spread");
        spread.insert(served(body).await);
    }
    assert!(spread.len() >= 2, "{spread:?}");

    // Its target fails: the conversation moves, and stays where it went.
    let i: usize = first[1..].parse().unwrap();
    *down[i].lock().unwrap() = true;
    let moved = served(turn("alice", 20)).await;
    assert_ne!(moved, first);
    for n in 21..30 {
        assert_eq!(served(turn("alice", n)).await, moved, "turn {n}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_chosen_header_or_the_leading_messages_name_the_conversation() {
    let ups = [
        FakeUpstream::openai().await,
        FakeUpstream::openai().await,
        FakeUpstream::openai().await,
    ];
    let gw = gateway(&format!(
        "{}routes:\n  by-header:\n    strategy: weighted\n    affinity: {{by: header, header: x-session-id}}\n    \
         targets: [{{provider: p0}}, {{provider: p1}}, {{provider: p2}}]\n  \
         by-prefix:\n    strategy: weighted\n    affinity: {{by: prefix, messages: 2}}\n    \
         targets: [{{provider: p0}}, {{provider: p1}}, {{provider: p2}}]\n",
        providers_yaml(&[&ups[0], &ups[1], &ups[2]], "")
    ))
    .await;
    let send = async |model: &str, session: Option<&str>, n: usize| {
        let mut body = turn("", n);
        body["model"] = json!(model);
        let mut req = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .json(&body);
        if let Some(s) = session {
            req = req.header("x-session-id", s);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["x-switchyard-provider"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let first = send("by-header", Some("s-1"), 0).await;
    for n in 1..20 {
        assert_eq!(send("by-header", Some("s-1"), n).await, first);
    }
    // The system prompt and first question are the same in every turn.
    let first = send("by-prefix", None, 1).await;
    for n in 2..20 {
        assert_eq!(send("by-prefix", None, n).await, first);
    }
    gw.stop().await;
}

const STEER: &str = "x-switchyard-route-strategy";
const TARGETS: &str = "x-switchyard-targets";

#[tokio::test]
async fn keys_that_may_override_steer_a_request_and_others_are_refused() {
    let ups = [FakeUpstream::openai().await, FakeUpstream::openai().await];
    let hash = |s: &str| switchyard::config::key_hash(s);
    let gw = gateway(&format!(
        "{}keys:\n  ops:\n    secret_hash: \"{}\"\n    overrides: [strategy, targets]\n  \
         app:\n    secret_hash: \"{}\"\n\
         routes:\n  m:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n",
        providers_yaml(&[&ups[0], &ups[1]], ""),
        hash("sk-ops"),
        hash("sk-app")
    ))
    .await;
    let send = async |key: &str, headers: &[(&str, &str)]| {
        let mut req = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(key)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    };
    // As configured: failover, p0 first.
    let r = send("sk-ops", &[]).await;
    assert_eq!(r.headers()["x-switchyard-provider"], "p0");
    // Steered to p1 only, then with another strategy.
    let r = send("sk-ops", &[(TARGETS, "p1")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = send("sk-ops", &[(STEER, "weighted")]).await;
        seen.insert(
            r.headers()["x-switchyard-provider"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen.len(), 2, "weighted reaches both: {seen:?}");
    // A key without the right: 403, nothing sent upstream.
    let before = ups[0].calls() + ups[1].calls();
    let r = send("sk-app", &[(TARGETS, "p1")]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_of(r).await["code"], "override_not_allowed");
    let r = send("sk-app", &[(STEER, "least_latency")]).await;
    assert_eq!(r.status(), 403);
    // Values the route cannot take: 400.
    for (h, v) in [(STEER, "fastest"), (TARGETS, "p9"), (STEER, "cost")] {
        let r = send("sk-ops", &[(h, v)]).await;
        assert_eq!(r.status(), 400, "{h}: {v}");
        assert_eq!(error_of(r).await["code"], "invalid_override");
    }
    assert_eq!(ups[0].calls() + ups[1].calls(), before);
    gw.stop().await;
}
