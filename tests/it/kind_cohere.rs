//! `kind: cohere` end to end: the real gateway over HTTP against a fake
//! Cohere API v2 (tests/it/common/cohere.rs) on 127.0.0.1:0.

use crate::common;

use common::cohere::{Failure, FakeCohere, vector_of};
use common::*;
use serde_json::{Value, json};

fn cohere_provider(name: &str, fake: &FakeCohere, extra: &str) -> String {
    format!(
        "  {name}:\n    kind: cohere\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n{extra}",
        fake.base_url()
    )
}

fn one_route(fake: &FakeCohere, route: &str, model: &str) -> String {
    format!(
        "providers:\n{}routes:\n  {route}:\n    targets: [{{provider: co, model: {model}}}]\n",
        cohere_provider("co", fake, "")
    )
}

/// The chunks of an OpenAI SSE body, each checked; `[DONE]` must be last.
fn chunks_of(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut done = false;
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data event: {event:?}"));
        assert!(!done, "an event after [DONE]");
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!(
            chunk["id"],
            out.first()
                .map_or(chunk["id"].clone(), |c: &Value| c["id"].clone())
        );
        assert!(chunk["created"].is_u64(), "{chunk}");
        out.push(chunk);
    }
    assert!(done, "no [DONE] in {text}");
    out
}

fn vectors_of(body: &Value) -> Vec<Vec<f32>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            serde_json::from_value(d["embedding"].clone()).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn embeddings_fan_out_in_batches_of_at_most_96_in_order() {
    let fake = FakeCohere::start().await;
    let gw = gateway(&one_route(&fake, "embed", "embed-v4.0")).await;
    let inputs: Vec<String> = (0..200).map(|i| format!("document {i}")).collect();
    let resp = gw.embed("embed", json!(inputs)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let vectors = vectors_of(&body);
    assert_eq!(vectors.len(), 200);
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(*v, vector_of(&inputs[i]), "vector {i}");
    }
    assert_eq!(
        body["usage"]["prompt_tokens"], 400,
        "billed input tokens summed"
    );
    let seen = fake.requests();
    let mut sizes: Vec<usize> = seen
        .iter()
        .map(|s| {
            assert_eq!(s.path, "/v2/embed");
            assert_eq!(
                s.headers["authorization"],
                format!("Bearer {TEST_KEY}").as_str()
            );
            assert_eq!(s.body["model"], "embed-v4.0");
            assert_eq!(s.body["input_type"], "search_document");
            assert_eq!(s.body["embedding_types"], json!(["float"]));
            assert!(s.body.get("truncate").is_none());
            s.body["texts"].as_array().unwrap().len()
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![8, 96, 96]);
}

#[tokio::test]
async fn input_type_from_the_provider_or_the_client_and_truncate() {
    let fake = FakeCohere::start().await;
    let yaml = format!(
        "providers:\n{}routes:\n  queries:\n    targets: [{{provider: co, model: embed-english-v3.0}}]\n",
        cohere_provider(
            "co",
            &fake,
            "    input_type: search_query\n    truncate: START\n"
        )
    );
    let gw = gateway(&yaml).await;
    let resp = gw.embed("queries", json!("what is a vector?")).await;
    assert_eq!(resp.status(), 200);
    let resp = gw
        .post(
            "/v1/embeddings",
            json!({"model": "queries", "input": ["a", "b"], "input_type": "clustering",
                   "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let first =
        switchyard::api::embeddings::decode_base64(body["data"][0]["embedding"].as_str().unwrap());
    assert_eq!(first.unwrap(), vector_of("a"));
    let seen = fake.requests();
    assert_eq!(seen[0].body["input_type"], "search_query");
    assert_eq!(seen[0].body["truncate"], "START");
    assert_eq!(seen[1].body["input_type"], "clustering");
    // An invalid client input_type is Cohere's to reject: passed back as is.
    let resp = gw
        .post(
            "/v1/embeddings",
            json!({"model": "queries", "input": "x", "input_type": "poetry"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let error = error_of(resp).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid request: input_type")
    );
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(fake.calls(), 3, "not retried");
    // Token ids cannot be expressed: refused before any call.
    let resp = gw.embed("queries", json!([[1, 2, 3]])).await;
    assert_eq!(resp.status(), 400);
    let error = error_of(resp).await;
    assert_eq!(error["code"], "unsupported_feature");
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn embeddings_fail_over_between_cohere_and_an_openai_kind_embedder() {
    let fake = FakeCohere::start().await;
    let openai = FakeUpstream::openai().await;
    let yaml = format!(
        "providers:\n{}  oa:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\nroutes:\n  co-first:\n    targets:\n      - {{provider: co, model: embed-v4.0}}\n      - {{provider: oa, model: text-embedding-3-small}}\n    retry: {{max_attempts: 1}}\n  oa-first:\n    targets:\n      - {{provider: oa, model: text-embedding-3-small}}\n      - {{provider: co, model: embed-v4.0}}\n    retry: {{max_attempts: 1}}\n",
        cohere_provider("co", &fake, ""),
        openai.base_url()
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::Server(503));
    let resp = gw.embed("co-first", json!(["alpha", "beta"])).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        vectors_of(&body),
        vec![vector_of("alpha"), vector_of("beta")]
    );
    assert_eq!((fake.calls(), openai.calls()), (1, 1));

    let broken = FakeUpstream::start(|_, _| async {
        Reply::Json(
            500,
            json!({"error": {"message": "boom", "type": "server_error"}}),
        )
    })
    .await;
    let yaml = yaml.replace(&openai.base_url(), &broken.base_url());
    let gw = gateway(&yaml).await;
    let resp = gw.embed("oa-first", json!(["gamma"])).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(vectors_of(&body), vec![vector_of("gamma")]);
    assert_eq!((broken.calls(), fake.calls()), (1, 2));
}

#[tokio::test]
async fn errors_reach_the_client_in_the_openai_envelope() {
    let fake = FakeCohere::start().await;
    let spare = FakeUpstream::openai().await;
    let yaml = format!(
        "providers:\n{}{}  spare:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\nroutes:\n  alone:\n    targets: [{{provider: co, model: embed-v4.0}}]\n    retry: {{max_attempts: 3, initial_backoff: 1ms, on_rate_limit: wait}}\n  pair:\n    targets:\n      - {{provider: co, model: embed-v4.0}}\n      - {{provider: spare}}\n  badkey:\n    targets:\n      - {{provider: wrong, model: embed-v4.0}}\n      - {{provider: spare}}\n",
        cohere_provider("co", &fake, ""),
        cohere_provider("wrong", &fake, "").replace("TEST_UPSTREAM_KEY", "TEST_ADMIN_TOKEN"),
        spare.base_url()
    );
    let gw = gateway(&yaml).await;

    // 422: the request itself; passed back, not retried, not failed over.
    fake.fail_next(Failure::Unprocessable);
    let resp = gw.embed("pair", json!("x")).await;
    assert_eq!(resp.status(), 422);
    let error = error_of(resp).await;
    assert_eq!(
        error["message"],
        "invalid request: the request could not be processed"
    );
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!((fake.calls(), spare.calls()), (1, 0));

    // 429 with retry-after: waited for and retried on the same provider.
    fake.fail_next(Failure::RateLimited(0));
    let resp = gw.embed("alone", json!("x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(fake.calls(), 3);

    // 429 on every attempt of a lone target: the client sees a 429.
    for _ in 0..3 {
        fake.fail_next(Failure::RateLimited(0));
    }
    let resp = gw.embed("alone", json!("x")).await;
    assert_eq!(resp.status(), 429);
    let error = error_of(resp).await;
    assert!(
        error["message"].as_str().unwrap().contains("status 429"),
        "{error}"
    );
    assert_eq!(fake.calls(), 6);

    // 429 with another target: failed over at once.
    fake.fail_next(Failure::RateLimited(0));
    let resp = gw.embed("pair", json!("x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!((fake.calls(), spare.calls()), (7, 1));

    // 401 (this provider's key): moves on without a retry.
    let resp = gw.embed("badkey", json!("x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!((fake.calls(), spare.calls()), (8, 2));
    assert_eq!(
        gw.metric("switchyard_upstream_requests_total{outcome=\"status_4xx\",provider=\"wrong\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn plain_chat_and_a_streamed_answer_with_usage() {
    let fake = FakeCohere::start().await;
    let gw = gateway(&one_route(&fake, "command", "command-a-03-2025")).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "command", "max_tokens": 50, "temperature": 0.2,
                   "messages": [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Tell me about LLMs"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "command-a-03-2025");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "Echo: Tell me about LLMs"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 71, "completion_tokens": 5, "total_tokens": 76})
    );
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/v2/chat");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {TEST_KEY}").as_str()
    );
    assert_eq!(
        seen.body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(seen.body["max_tokens"], 50);
    assert_eq!(seen.body["stream"], false);

    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "command", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let chunks = chunks_of(&resp.text().await.unwrap());
    assert_eq!(chunks[0]["id"], "29f14a5a-fake");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Echo: one two three");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(fake.requests()[1].body["stream"], true);
}

#[tokio::test]
async fn tool_calls_streamed_and_not_and_images() {
    let fake = FakeCohere::start().await;
    let gw = gateway(&one_route(&fake, "command", "command-a-03-2025")).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    let ask = |stream: bool| {
        json!({"model": "command", "stream": stream, "tools": tools, "tool_choice": "auto",
               "messages": [{"role": "user", "content": "What is the weather in Paris?"}]})
    };
    let body: Value = gw
        .post("/v1/chat/completions", ask(false))
        .await
        .json()
        .await
        .unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "get_weather_fake01", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}])
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(fake.requests()[0].body["tools"], tools);

    let resp = gw.post("/v1/chat/completions", ask(true)).await;
    let chunks = chunks_of(&resp.text().await.unwrap());
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(
        *calls[0],
        json!({"index": 0, "id": "get_weather_fake01", "type": "function",
               "function": {"name": "get_weather", "arguments": ""}})
    );
    assert!(
        calls[1..]
            .iter()
            .all(|c| c.get("id").is_none() && c["index"] == 0)
    );
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"location\":\"Paris\"}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The tool result round trip.
    let body: Value = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "command", "tools": tools, "messages": [
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": message["tool_calls"]},
                {"role": "tool", "tool_call_id": "get_weather_fake01", "content": "22C and sunny"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The tool said: 22C and sunny"
    );
    let sent = &fake.requests()[2].body["messages"];
    assert_eq!(sent[1]["tool_calls"][0]["id"], "get_weather_fake01");
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": "get_weather_fake01", "content": "22C and sunny"})
    );

    let body: Value = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "command", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Describe this image"},
                {"type": "image_url", "image_url": {"url": "https://cohere.com/favicon-32x32.png", "detail": "auto"}}]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Echo: Describe this image (+1 images)"
    );

    // What Cohere cannot express is refused before any call.
    let calls = fake.calls();
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "command", "n": 3, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let error = error_of(resp).await;
    assert_eq!(error["code"], "unsupported_feature");
    assert!(error["message"].as_str().unwrap().contains("`n`"));
    assert_eq!(fake.calls(), calls);
}

#[tokio::test]
async fn chat_fails_over_from_cohere_to_mock_and_back() {
    let fake = FakeCohere::start().await;
    let yaml = format!(
        "providers:\n{}  spare:\n    kind: mock\n    failure_rate: 1\n    failure_status: 503\n  good:\n    kind: mock\nroutes:\n  to-mock:\n    targets:\n      - {{provider: co, model: command-a-03-2025}}\n      - {{provider: good}}\n    retry: {{max_attempts: 2, initial_backoff: 1ms}}\n  to-cohere:\n    targets:\n      - {{provider: spare}}\n      - {{provider: co, model: command-a-03-2025}}\n    retry: {{max_attempts: 1}}\n",
        cohere_provider("co", &fake, "")
    );
    let gw = gateway(&yaml).await;
    fake.fail_next(Failure::Server(503));
    fake.fail_next(Failure::Server(500));
    let resp = gw.chat("to-mock", "hello").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "good");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "[good] You said: hello"
    );
    assert_eq!(fake.calls(), 2, "retried once, then failed over");

    let resp = gw.chat("to-cohere", "hello").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "co");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello");
}

#[tokio::test]
async fn a_failed_or_cut_stream_ends_with_an_error_event() {
    let fake = FakeCohere::start().await;
    let gw = gateway(&one_route(&fake, "command", "command-a-03-2025")).await;
    for (failure, needle) in [
        (Failure::StreamError, "internal error while generating"),
        (Failure::StreamCut, "message-end"),
    ] {
        fake.fail_next(failure);
        let resp = gw
            .post(
                "/v1/chat/completions",
                json!({"model": "command", "stream": true, "messages": [{"role": "user", "content": "a b"}]}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        let last: Value =
            serde_json::from_str(events.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "stream_interrupted", "{text}");
        assert!(
            last["error"]["message"].as_str().unwrap().contains(needle),
            "{text}"
        );
        assert!(
            text.contains("\"content\":\"Echo:\""),
            "the delta before the failure got through: {text}"
        );
        assert!(!text.contains("[DONE]"));
    }
}

#[test]
fn check_reports_cohere_keys_at_their_lines() {
    use std::sync::Arc;
    use switchyard::config::{Env, Source, load_sources};
    let text = "providers:\n  co:\n    kind: cohere\n    input_type: search\n    truncate: LEFT\n    model: x\nroutes:\n  r:\n    targets: [{provider: co}]\n";
    let env: Env = Arc::new(|_| None);
    let errors = load_sources(
        &[Source {
            name: "policy.yaml".into(),
            text: text.into(),
        }],
        &env,
        switchyard::providers::check_kind,
    )
    .unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let has = |needle: &str| lines.iter().any(|l| l.starts_with(needle));
    assert!(
        has("policy.yaml:3: providers.co.api_key_env: is required for kind cohere"),
        "{lines:?}"
    );
    assert!(
        has("policy.yaml:4: providers.co.input_type: \"search\" must be one of"),
        "{lines:?}"
    );
    assert!(
        has("policy.yaml:5: providers.co.truncate: \"LEFT\" must be one of NONE, START, END"),
        "{lines:?}"
    );
    assert!(
        has("policy.yaml:6: providers.co.model: unknown field `model` for kind cohere"),
        "{lines:?}"
    );
}
