//! `POST /v1/rerank` end to end: the real gateway over HTTP against a fake
//! Cohere API v2 (`/v2/rerank`), an OpenAI-compatible server with vLLM's
//! Jina/Cohere-style `/v1/rerank`, and the built-in mock; ordering, `top_n`,
//! `return_documents`, the per-document cache, failover, retries of
//! garbage answers and routes that cannot rerank.

use crate::common;

use common::cohere::rerank::score_of;
use common::cohere::{Failure, FakeCohere};
use common::*;
use serde_json::{Value, json};

/// A vLLM-style answer to a rerank request: every document, by relevance,
/// with its text, and usage.
fn vllm_rerank(body: &Value) -> Reply {
    let query = body["query"].as_str().unwrap_or("");
    let docs: Vec<&str> = body["documents"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut results: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i, score_of(query, d)))
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1));
    let results: Vec<Value> = results
        .into_iter()
        .map(|(i, s)| json!({"index": i, "document": {"text": docs[i]}, "relevance_score": s}))
        .collect();
    Reply::Json(
        200,
        json!({"id": "rerank-fake", "model": body["model"], "results": results,
               "usage": {"total_tokens": docs.len() * 10}}),
    )
}

async fn vllm() -> FakeUpstream {
    FakeUpstream::start(|s, _| async move {
        match s.path.as_str() {
            "/v1/rerank" => vllm_rerank(&s.body),
            _ => Reply::Json(404, json!({"error": {"message": "not found"}})),
        }
    })
    .await
}

fn indices(body: &Value) -> Vec<u64> {
    let results = body["results"].as_array().unwrap();
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["relevance_score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "not sorted: {body}"
    );
    results
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect()
}

const CAPITALS: [&str; 4] = [
    "Carson City is the capital city of Nevada.",
    "Bananas are yellow.",
    "Washington, D.C. is the capital of the United States.",
    "The capital of France is Paris.",
];

#[tokio::test]
async fn mock_ranks_by_word_overlap_with_top_n_and_documents() {
    let gw =
        gateway("providers:\n  m:\n    kind: mock\nroutes:\n  rr:\n    targets: [{provider: m}]\n")
            .await;
    let body = json!({"model": "rr", "query": "capital of France",
        "documents": ["bananas are yellow", {"text": "the capital of France is Paris"}, "France"],
        "top_n": 2, "return_documents": true});
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "m");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "rr");
    // Jaccard overlap: doc 1 = 3/6, doc 2 = 1/3, doc 0 = 0; cut to 2.
    assert_eq!(indices(&v), vec![1, 2]);
    assert_eq!(v["results"][0]["relevance_score"], 0.5);
    assert_eq!(
        v["results"][0]["document"]["text"],
        "the capital of France is Paris"
    );
    assert_eq!(v["results"][1]["document"]["text"], "France");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0, "{v}");

    // Without return_documents: no `document`; without top_n: all.
    let body = json!({"model": "rr", "query": "capital of France",
                      "documents": ["bananas are yellow", "France"]});
    let v: Value = gw.post("/v1/rerank", body).await.json().await.unwrap();
    assert_eq!(indices(&v), vec![1, 0]);
    assert!(v["results"][0].get("document").is_none(), "{v}");
    let requests = gw
        .metric("switchyard_requests_total{endpoint=\"rerank\",route=\"rr\",status=\"200\"}")
        .await;
    assert_eq!(requests, 2.0);
}

#[tokio::test]
async fn cohere_v2_rerank_follows_the_reference() {
    let fake = FakeCohere::start().await;
    let yaml = format!(
        "providers:\n  co:\n    kind: cohere\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n\
         routes:\n  rr:\n    targets: [{{provider: co, model: rerank-v3.5}}]\n",
        fake.base_url()
    );
    let gw = gateway(&yaml).await;
    let body = json!({"model": "rr", "query": "What is the capital of the United States?",
        "documents": CAPITALS, "top_n": 2, "return_documents": true, "max_tokens_per_doc": 512});
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(indices(&v), vec![2, 0], "{v}");
    assert_eq!(v["results"][0]["document"]["text"], CAPITALS[2]);
    assert_eq!(v["usage"]["search_units"], 1);
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v2/rerank");
    assert_eq!(
        seen[0].body,
        json!({"model": "rerank-v3.5", "query": "What is the capital of the United States?",
               "documents": CAPITALS, "max_tokens_per_doc": 512}),
        "no top_n (applied by the gateway), no return_documents (not in v2)"
    );
    // A field Cohere cannot take is the client's error, not a silent drop.
    let body = json!({"model": "rr", "query": "q", "documents": ["a"], "rank_fields": ["t"]});
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.status(), 400);
    let e = error_of(resp).await;
    assert_eq!(e["code"], "unsupported_feature", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("rank_fields"),
        "{e}"
    );
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn openai_kind_reranks_through_its_rerank_endpoint() {
    let up = vllm().await;
    let yaml = format!(
        "{}routes:\n  rr:\n    targets: [{{provider: p0, model: BAAI/bge-reranker-v2-m3}}]\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let body = json!({"model": "rr", "query": "capital of France", "documents": CAPITALS,
                      "top_n": 3});
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    // score_of: doc 3 = 3/3, docs 0 and 2 = 2/3 (ties in document order).
    assert_eq!(indices(&v), vec![3, 0, 2]);
    assert_eq!(v["usage"]["total_tokens"], 40);
    let seen = up.requests();
    assert_eq!(seen[0].path, "/v1/rerank");
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {TEST_KEY}")
    );
    assert_eq!(
        seen[0].body,
        json!({"model": "BAAI/bge-reranker-v2-m3", "query": "capital of France",
               "documents": CAPITALS})
    );
}

#[tokio::test]
async fn partial_cache_hit_sends_only_the_missed_documents() {
    let up = vllm().await;
    let yaml = format!(
        "{}routes:\n  rr:\n    targets: [{{provider: p0, model: rer}}]\n    cache: {{enabled: true, ttl: 5m}}\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let query = "capital of France";
    let first = json!({"model": "rr", "query": query, "documents": [CAPITALS[0], CAPITALS[1]]});
    let resp = gw.post("/v1/rerank", first.clone()).await;
    assert_eq!(resp.headers()["x-switchyard-cache"], "miss");
    assert_eq!(indices(&resp.json().await.unwrap()), vec![0, 1]);

    // Two known documents, one new one sent twice, top_n over the merge.
    let docs = [CAPITALS[1], CAPITALS[3], CAPITALS[0], CAPITALS[3]];
    let body = json!({"model": "rr", "query": query, "documents": docs, "top_n": 3,
                      "return_documents": true});
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-cache"], "partial");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(indices(&v), vec![1, 3, 2], "{v}");
    for r in v["results"].as_array().unwrap() {
        let i = r["index"].as_u64().unwrap() as usize;
        assert_eq!(r["document"]["text"], docs[i]);
        assert_eq!(
            r["relevance_score"].as_f64().unwrap(),
            score_of(query, docs[i])
        );
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].body["documents"],
        json!([CAPITALS[3]]),
        "only the miss, once"
    );

    // All known now: no upstream call; another query is a miss.
    let resp = gw.post("/v1/rerank", first).await;
    assert_eq!(resp.headers()["x-switchyard-cache"], "hit");
    assert_eq!(up.calls(), 2);
    let other = json!({"model": "rr", "query": "Nevada", "documents": [CAPITALS[0]]});
    let resp = gw.post("/v1/rerank", other).await;
    assert_eq!(resp.headers()["x-switchyard-cache"], "miss");
    assert_eq!(up.calls(), 3);
    let hits = gw
        .metric("switchyard_cache_hits_total{kind=\"rerank\",route=\"rr\"}")
        .await;
    assert_eq!(hits, 4.0, "2 in the partial request, 2 in the full hit");
}

#[tokio::test]
async fn fails_over_from_cohere_to_the_mock() {
    let fake = FakeCohere::start().await;
    let yaml = format!(
        "providers:\n  co:\n    kind: cohere\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n\
         \x20 backup:\n    kind: mock\n\
         routes:\n  rr:\n    targets:\n      - {{provider: co, model: rerank-v3.5}}\n      - {{provider: backup}}\n\
         \x20   retry: {{max_attempts: 2, initial_backoff: 1ms, max_backoff: 2ms}}\n",
        fake.base_url()
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::Server(503));
    fake.fail_next(Failure::Server(500));
    let body = json!({"model": "rr", "query": "capital of France",
                      "documents": ["bananas", "France capital"]});
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "backup");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "3");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(indices(&v), vec![1, 0]);
    assert_eq!(fake.calls(), 2);
    let failovers = gw.metric("switchyard_failovers_total{route=\"rr\"}").await;
    assert_eq!(failovers, 1.0);
}

#[tokio::test]
async fn a_route_that_cannot_rerank_answers_400() {
    let up = FakeUpstream::openai().await;
    let yaml = format!(
        "providers:\n  claude:\n    kind: anthropic\n    base_url: http://{}\n    api_key_env: TEST_UPSTREAM_KEY\n\
         \x20 m:\n    kind: mock\n\
         routes:\n  mixed:\n    targets:\n      - {{provider: m}}\n      - {{provider: claude, model: claude-x}}\n",
        up.addr
    );
    let gw = gateway(&yaml).await;
    let body = json!({"model": "mixed", "query": "q", "documents": ["a"]});
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.status(), 400);
    let e = error_of(resp).await;
    assert_eq!(e["code"], "unsupported_endpoint");
    assert_eq!(e["param"], "model");
    assert_eq!(up.calls(), 0);
    // Bad input and unknown models get their own errors.
    let resp = gw
        .post("/v1/rerank", json!({"model": "mixed", "documents": ["a"]}))
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_of(resp).await["param"], "query");
    let resp = gw
        .post(
            "/v1/rerank",
            json!({"model": "nope", "query": "q", "documents": ["a"]}),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let resp = gw.get("/v1/rerank").await;
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn declared_endpoints_decide_and_check_refuses_a_target_that_cannot_rerank() {
    let yaml = "providers:\n  m:\n    kind: mock\n\
                routes:\n  emb:\n    targets: [{provider: m}]\n    endpoints: [embeddings]\n\
                \x20 rr:\n    targets: [{provider: m}]\n    endpoints: [rerank]\n";
    let gw = gateway(yaml).await;
    let body = |model| json!({"model": model, "query": "q", "documents": ["q"]});
    let resp = gw.post("/v1/rerank", body("emb")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_of(resp).await["code"], "unsupported_endpoint");
    assert_eq!(gw.post("/v1/rerank", body("rr")).await.status(), 200);
    assert_eq!(gw.chat("rr", "hi").await.status(), 400);

    let yaml = "providers:\n  claude:\n    kind: anthropic\n    base_url: http://127.0.0.1:9\n\
                \x20   api_key_env: TEST_UPSTREAM_KEY\n\
                routes:\n  rr:\n    targets: [{provider: claude, model: c}]\n    endpoints: [rerank]\n";
    let errors = try_gateway_env(yaml, &[]).await.err().expect("refused");
    let text = errors.to_string();
    assert!(text.contains("cannot serve rerank"), "{text}");
}

#[tokio::test]
async fn identical_concurrent_misses_share_one_upstream_call() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let up = FakeUpstream::start(move |s, _| {
        let held = held.clone();
        async move {
            let _permit = held.acquire().await;
            vllm_rerank(&s.body)
        }
    })
    .await;
    let yaml = format!(
        "{}routes:\n  rr:\n    targets: [{{provider: p0, model: rer}}]\n    cache: {{enabled: true}}\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let body = json!({"model": "rr", "query": "Paris", "documents": ["Rome", "Paris"]});
    let a = gw.spawn_post("/v1/rerank", body.clone());
    let b = gw.spawn_post("/v1/rerank", body);
    // Each request counts its misses in the same poll that joins the flight.
    eventually(async || {
        gw.metric("switchyard_cache_misses_total{kind=\"rerank\",route=\"rr\"}")
            .await
            == 4.0
    })
    .await;
    gate.add_permits(10);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut states = vec![
        a.headers()["x-switchyard-cache"].clone(),
        b.headers()["x-switchyard-cache"].clone(),
    ];
    states.sort();
    assert_eq!(states, ["hit", "miss"]);
    for resp in [a, b] {
        assert_eq!(indices(&resp.json().await.unwrap()), vec![1, 0]);
    }
    assert_eq!(up.calls(), 1);
    let coalesced = gw
        .metric("switchyard_coalesced_requests_total{kind=\"rerank\",route=\"rr\"}")
        .await;
    assert_eq!(coalesced, 1.0);
}

#[tokio::test]
async fn a_garbage_200_is_retried_and_never_cached() {
    let up = FakeUpstream::start(|s, n| async move {
        match n {
            1 => Reply::Json(
                200,
                json!({"results": [{"index": 7, "relevance_score": 1.0}]}),
            ),
            2 => Reply::Json(200, json!({"object": "list", "data": []})),
            _ => vllm_rerank(&s.body),
        }
    })
    .await;
    let yaml = format!(
        "{}routes:\n  rr:\n    targets: [{{provider: p0, model: rer}}]\n    cache: {{enabled: true}}\n\
         \x20   retry: {{max_attempts: 3, initial_backoff: 1ms, max_backoff: 2ms}}\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let body = json!({"model": "rr", "query": "Paris", "documents": ["Paris", "Rome"]});
    let resp = gw.post("/v1/rerank", body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-attempts"], "3");
    assert_eq!(indices(&resp.json().await.unwrap()), vec![0, 1]);
    let protocol = gw
        .metric("switchyard_upstream_requests_total{outcome=\"protocol_error\",provider=\"p0\"}")
        .await;
    assert_eq!(protocol, 2.0);
    let resp = gw.post("/v1/rerank", body).await;
    assert_eq!(resp.headers()["x-switchyard-cache"], "hit");
    assert_eq!(up.calls(), 3);
}

#[tokio::test]
async fn text_embeddings_inference_reranks_through_its_root_rerank_endpoint() {
    // TEI's own API: `POST /rerank` at the server root with `{query, texts}`,
    // answered with `[{index, score}]`.
    let tei = FakeUpstream::start(|s, _| async move {
        if s.path != "/rerank" || s.body.get("documents").is_some() {
            return Reply::Json(
                422,
                json!({"error": "unexpected request", "error_type": "Validation"}),
            );
        }
        let query = s.body["query"].as_str().unwrap_or("").to_string();
        let mut scored: Vec<Value> = s.body["texts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| json!({"index": i, "score": score_of(&query, t.as_str().unwrap_or(""))}))
            .collect();
        scored.sort_by(|a, b| {
            b["score"]
                .as_f64()
                .unwrap()
                .total_cmp(&a["score"].as_f64().unwrap())
        });
        Reply::Json(200, Value::Array(scored))
    })
    .await;
    let yaml = format!(
        "providers:\n  tei:\n    kind: openai\n    base_url: {}\n    rerank_api: tei\nroutes:\n  bge-reranker:\n    targets: [{{provider: tei}}]\n",
        tei.base_url()
    );
    let gw = gateway(&yaml).await;
    let r = gw
        .post(
            "/v1/rerank",
            json!({"model": "bge-reranker", "query": "red apples",
                   "documents": ["blue sky", "red apples and pears", "apples"], "top_n": 2}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(indices(&v), vec![1, 2], "{v}");
    let seen = tei.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path,
        "/rerank",
        "the server root, not {}",
        tei.base_url()
    );
    assert_eq!(seen[0].body["texts"].as_array().unwrap().len(), 3);
    gw.stop().await;
}
