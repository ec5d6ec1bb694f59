//! Failures of a `gemini` target: Gemini errors in the OpenAI envelope,
//! validation errors passed back, rate limits retried after Gemini's
//! `RetryInfo` or reaching the client as 429s, failover to and from other
//! kinds, broken streams, and policy validation at `file:line`.

use super::*;

#[tokio::test]
async fn a_validation_error_goes_back_as_is_without_retry_or_failover() {
    let fake = FakeGemini::start().await;
    let yaml = format!(
        "providers:\n{}  m:\n    kind: mock\n{}",
        gemini("g", &fake, ""),
        route(&["g", "m"], "")
    );
    let gw = gateway(&yaml).await;
    // Gemini refuses allowedFunctionNames that name no declared function.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "tools": weather_tools(),
                   "tool_choice": {"type": "function", "function": {"name": "get_time"}},
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err = error_of(resp).await;
    assert_eq!(err["type"], "invalid_request_error");
    assert_eq!(err["code"], "invalid_argument");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("allowed_function_names"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1, "not retried");

    // What Gemini cannot express is refused before any call.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "logprobs": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err = error_of(resp).await;
    assert_eq!(err["code"], "unsupported_feature");
    assert!(
        err["message"].as_str().unwrap().contains("logprobs"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1, "nothing sent upstream");
    gw.stop().await;
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_gemini_retry_delay() {
    let fake = FakeGemini::start().await;
    let yaml = format!(
        "providers:\n{}{}",
        gemini("g", &fake, ""),
        route(
            &["g"],
            "    retry: { max_attempts: 3, initial_backoff: 1ms, max_backoff: 1ms, jitter: false }\n"
        )
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::RateLimited(1));
    let started = Instant::now();
    let resp = gw.chat("r", "hello").await;
    let waited = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello");
    // The backoff is 1ms: only Gemini's RetryInfo.retryDelay explains this.
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(
        gw.metric("switchyard_upstream_requests_total{outcome=\"status_429\",provider=\"g\"}")
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_rate_limit_on_the_last_target_reaches_the_client_as_a_429() {
    let fake = FakeGemini::start().await;
    let yaml = format!(
        "providers:\n{}{}",
        gemini("g", &fake, ""),
        route(&["g"], "    retry: { max_attempts: 1 }\n")
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::RateLimited(7));
    let resp = gw.chat("r", "hello").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["retry-after-ms"], "7000");
    let err = error_of(resp).await;
    assert_eq!(err["code"], "upstream_rate_limited");
    gw.stop().await;
}

#[tokio::test]
async fn overloaded_gemini_fails_over_to_the_mock_kind() {
    let fake = FakeGemini::start().await;
    let yaml = format!(
        "providers:\n{}  m:\n    kind: mock\n{}",
        gemini("g", &fake, ""),
        route(
            &["g", "m:mock-model"],
            "    retry: { max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms }\n"
        )
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::Overloaded);
    fake.fail_next(Failure::Internal);
    let resp = gw.chat("r", "are you there").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "m");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "3");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "[m] You said: are you there"
    );
    assert_eq!(fake.requests().len(), 2, "retried once, then failed over");
    assert_eq!(
        gw.metric("switchyard_upstream_requests_total{outcome=\"status_5xx\",provider=\"g\"}")
            .await,
        2.0
    );

    // A refused key moves on at once (no retry): the mock answers.
    let yaml = format!(
        "providers:\n  bad:\n    kind: gemini\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n  \
         m:\n    kind: mock\n{}",
        fake.base_url(),
        route(&["bad", "m"], "    retry: { max_attempts: 3 }\n")
    );
    let gw2 = gateway(&yaml).await;
    let before = fake.requests().len();
    let resp = gw2.chat("r", "hi").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "m");
    assert_eq!(fake.requests().len(), before + 1);
    gw.stop().await;
    gw2.stop().await;
}

#[tokio::test]
async fn another_kind_fails_over_to_gemini_streaming_too() {
    let fake = FakeGemini::start().await;
    let down = FakeUpstream::start(|_, _| async {
        Reply::Json(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    })
    .await;
    let yaml = format!(
        "providers:\n{}{}{}",
        openai("o", &down),
        gemini("g", &fake, ""),
        route(&["o:gpt-4o-mini", "g"], "    retry: { max_attempts: 1 }\n")
    );
    let gw = gateway(&yaml).await;
    let resp = gw.chat("r", "hello gemini").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "g");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Echo: hello gemini"
    );

    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "stream": true, "messages": [{"role": "user", "content": "streamed"}]}),
        )
        .await;
    assert_eq!(resp.headers()["x-switchyard-provider"], "g");
    let (chunks, done) = sse(resp).await;
    assert!(done);
    assert_chunks(&chunks);
    assert_eq!(down.calls(), 2);
    assert_eq!(fake.requests().len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn an_error_inside_the_stream_ends_it_with_an_error_event() {
    let fake = FakeGemini::start().await;
    let gw = gateway(&format!(
        "providers:\n{}{}",
        gemini("g", &fake, ""),
        route(&["g"], "")
    ))
    .await;
    for failure in [Failure::StreamError, Failure::StreamCut] {
        fake.fail_next(failure.clone());
        let resp = gw
            .post(
                "/v1/chat/completions",
                json!({"model": "r", "stream": true,
                       "messages": [{"role": "user", "content": "one two three four five six"}]}),
            )
            .await;
        let (events, done) = sse(resp).await;
        assert!(!done, "{failure:?}: no [DONE] after a broken stream");
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        let last = events.last().unwrap();
        assert!(last["error"]["message"].is_string(), "{failure:?}: {last}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn bad_gemini_keys_fail_the_policy_at_their_lines() {
    let yaml = "providers:\n  g:\n    kind: gemini\n    embed_task_type: SEARCH\n    region: eu\nroutes:\n  r:\n    targets: [{provider: g, model: m}]\n";
    let err = match start(yaml).await {
        Ok(gw) => {
            gw.stop().await;
            panic!("a bad policy started");
        }
        Err(e) => e,
    };
    assert!(
        err.contains("policy.yaml:3: providers.g.api_key_env: is required for kind gemini"),
        "{err}"
    );
    assert!(
        err.contains(
            "policy.yaml:4: providers.g.embed_task_type: unknown Gemini task type \"SEARCH\""
        ),
        "{err}"
    );
    assert!(
        err.contains("policy.yaml:5: providers.g.region: unknown field `region` for kind gemini"),
        "{err}"
    );
}

#[tokio::test]
async fn the_example_policy_is_valid() {
    let gw = gateway(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/gemini.yaml"
    )))
    .await;
    let models: Value = gw.get("/v1/models").await.json().await.unwrap();
    let mut ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["gemini-embedding", "gemini-flash", "gemini-pro"]);
    gw.stop().await;
}
