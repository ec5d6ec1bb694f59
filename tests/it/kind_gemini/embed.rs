//! Embeddings through a `gemini` target: fan-out in sub-batches of at most
//! 100 (Gemini's `batchEmbedContents` limit), vectors in input order, and
//! failover between the `gemini` and `openai` kinds per sub-batch.

use super::*;

fn vectors(body: &Value) -> Vec<Vec<f32>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn embeddings_fan_out_in_batches_of_at_most_100_in_order() {
    let fake = FakeGemini::start().await;
    let yaml = format!(
        "providers:\n{}{}",
        gemini("g", &fake, "    embed_task_type: RETRIEVAL_DOCUMENT\n"),
        route(&["g:gemini-embedding-001"], "")
    );
    let gw = gateway(&yaml).await;
    let inputs: Vec<String> = (0..250).map(|i| format!("document number {i}")).collect();
    let resp = gw
        .post(
            "/v1/embeddings",
            json!({"model": "r", "input": inputs, "dimensions": 4}),
        )
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    let got = vectors(&body);
    let want: Vec<Vec<f32>> = inputs.iter().map(|t| gemini_vector(t, 4)).collect();
    assert_eq!(got, want);

    let seen = fake.requests();
    let mut sizes: Vec<usize> = seen
        .iter()
        .map(|s| {
            assert_eq!(
                s.path,
                "/v1beta/models/gemini-embedding-001:batchEmbedContents"
            );
            let requests = s.body["requests"].as_array().unwrap();
            for r in requests {
                assert_eq!(r["taskType"], "RETRIEVAL_DOCUMENT");
                assert_eq!(r["outputDimensionality"], 4);
            }
            requests.len()
        })
        .collect();
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    sizes.sort_unstable();
    assert_eq!(sizes, vec![50, 100, 100]);
    gw.stop().await;
}

#[tokio::test]
async fn embeddings_fail_over_between_gemini_and_openai_in_order() {
    let fake = FakeGemini::start().await;
    let up = FakeUpstream::openai().await;
    let yaml = format!(
        "providers:\n{}{}{}",
        gemini("g", &fake, ""),
        openai("o", &up),
        route(
            &["g:gemini-embedding-001", "o:text-embedding-3-small"],
            "    retry: { max_attempts: 1 }\n"
        )
    );
    let gw = gateway(&yaml).await;
    // One sub-batch meets an overloaded Gemini and moves to the openai kind.
    fake.fail_next(Failure::Overloaded);
    let inputs: Vec<String> = (0..250).map(|i| format!("doc {i}")).collect();
    let resp = gw
        .post(
            "/v1/embeddings",
            json!({"model": "r", "input": inputs, "dimensions": 3}),
        )
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let got = vectors(&body);
    assert_eq!(got.len(), 250);

    let sent = up.requests();
    assert_eq!(sent.len(), 1, "exactly one sub-batch failed over");
    let moved: Vec<String> = sent[0].body["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(moved.len() == 100 || moved.len() == 50, "{}", moved.len());
    // Three sub-batches, three Gemini calls: the one Gemini refused is the
    // one openai served.
    let gemini_calls = fake.requests();
    assert_eq!(gemini_calls.len(), 3);
    assert!(gemini_calls.iter().any(|s| {
        let texts: Vec<&str> = s.body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["content"]["parts"][0]["text"].as_str().unwrap())
            .collect();
        texts == moved
    }));
    for (i, text) in inputs.iter().enumerate() {
        let want = if moved.contains(text) {
            expected_vector(&json!(text))
        } else {
            gemini_vector(text, 3)
        };
        assert_eq!(got[i], want, "input {i}");
    }

    // And the other way round: the openai kind down, Gemini serves it all.
    let down = FakeUpstream::down(503).await;
    let yaml = format!(
        "providers:\n{}{}{}",
        openai("o", &down),
        gemini("g", &fake, ""),
        route(
            &["o:text-embedding-3-small", "g:gemini-embedding-001"],
            "    retry: { max_attempts: 1 }\n"
        )
    );
    let gw2 = gateway(&yaml).await;
    let resp = gw2
        .post(
            "/v1/embeddings",
            json!({"model": "r", "input": &inputs[..120], "dimensions": 3}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let got = vectors(&resp.json().await.unwrap());
    let want: Vec<Vec<f32>> = inputs[..120].iter().map(|t| gemini_vector(t, 3)).collect();
    assert_eq!(got, want);
    assert_eq!(down.calls(), 2, "one call per sub-batch of 100");
    gw.stop().await;
    gw2.stop().await;
}
