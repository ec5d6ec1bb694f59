//! `kind: bedrock` end to end: OpenAI clients -> the real gateway over HTTP
//! -> signed Converse / ConverseStream / InvokeModel calls -> the fake
//! Bedrock Runtime (which verifies every SigV4 signature) -> translated
//! answers, errors in the OpenAI envelope, retries, failover both ways,
//! embeddings fan-out by the model's batch limit, and policy errors at
//! their lines.

use crate::common;

use common::bedrock::{self as fake, Failure, FakeBedrock, Operation};
use common::{FakeUpstream, Reply, TestGateway, error_of};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard::api::sse::SseDecoder;

const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const TITAN: &str = "amazon.titan-embed-text-v2:0";
const COHERE: &str = "cohere.embed-english-v3";

/// The environment the gateway reads credentials from: the fake's.
/// The fake's AWS credentials, as the policy's `*_env` variables.
fn env() -> Vec<(&'static str, String)> {
    let creds = fake::credentials();
    vec![
        ("BEDROCK_TEST_KEY_ID", creds.access_key_id.clone()),
        ("BEDROCK_TEST_SECRET", creds.secret_access_key.clone()),
        ("BEDROCK_TEST_TOKEN", creds.session_token.clone().unwrap()),
    ]
}

async fn try_start(yaml: &str) -> Result<TestGateway, switchyard::config::ConfigErrors> {
    let vars = env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::try_gateway_env(yaml, &vars).await
}

/// `common::gateway`, with the fake's AWS credentials in the environment.
async fn start(yaml: &str) -> TestGateway {
    try_start(yaml)
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start:\n{e}"))
}

const RETRY: &str =
    "retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 2ms, jitter: false}";

/// A bedrock provider on `fake`, a mock named `fallback`, and routes.
fn policy(fake: &FakeBedrock, extra: &str) -> String {
    format!(
        "providers:
  bedrock:
    kind: bedrock
    region: us-east-1
    base_url: {}
    access_key_id_env: BEDROCK_TEST_KEY_ID
    secret_access_key_env: BEDROCK_TEST_SECRET
    session_token_env: BEDROCK_TEST_TOKEN
  fallback:
    kind: mock
{extra}routes:
  claude:
    targets: [{{provider: bedrock, model: \"{CLAUDE}\"}}]
    {RETRY}
  claude-or-mock:
    targets: [{{provider: bedrock, model: \"{CLAUDE}\"}}, {{provider: fallback}}]
    {RETRY}
  titan:
    targets: [{{provider: bedrock, model: \"{TITAN}\"}}]
  cohere:
    targets: [{{provider: bedrock, model: \"{COHERE}\"}}]
",
        fake.base_url()
    )
}

async fn setup() -> (FakeBedrock, TestGateway) {
    let fake = FakeBedrock::start().await;
    let gw = start(&policy(&fake, "")).await;
    (fake, gw)
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// The `data:` payloads of an SSE answer, decoded as the bytes arrive.
async fn sse_events(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(header(&resp, "content-type"), "text/event-stream");
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        decoder.feed(&chunk.unwrap(), &mut events);
    }
    assert!(decoder.at_boundary(), "the stream ended inside an event");
    events.into_iter().map(|e| e.data).collect()
}

/// Checks every event is a valid `chat.completion.chunk` of one answer for
/// `model`, ending in `[DONE]`; returns the chunks.
fn openai_chunks(events: &[String], model: &str) -> Vec<Value> {
    let (done, rest) = events.split_last().expect("no events");
    assert_eq!(done, "[DONE]");
    let chunks: Vec<Value> = rest
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("not JSON: {e}")))
        .collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], chunks[0]["id"], "{c}");
        assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"), "{c}");
        assert!(c["created"].is_u64(), "{c}");
        assert_eq!(c["model"], model, "{c}");
        assert!(c["choices"].is_array(), "{c}");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "first chunk"
    );
    chunks
}

fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn finish_of(chunks: &[Value]) -> Vec<&str> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect()
}

#[tokio::test]
async fn plain_chat() {
    let (fake, gw) = setup().await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "max_tokens": 64, "temperature": 0.5,
                   "messages": [{"role": "system", "content": "Be terse."},
                                {"role": "user", "content": "Hi there"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-provider"), "bedrock");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude");
    assert_eq!(
        body["choices"][0],
        json!({"index": 0, "message": {"role": "assistant", "content": "You said: Hi there"},
               "finish_reason": "stop"})
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].operation, Some(Operation::Converse));
    assert_eq!(seen[0].model_id, CLAUDE);
    assert_eq!(seen[0].body["system"], json!([{"text": "Be terse."}]));
    assert_eq!(
        seen[0].body["inferenceConfig"],
        json!({"maxTokens": 64, "temperature": 0.5})
    );
    let auth = seen[0].headers["authorization"].to_str().unwrap();
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    gw.stop().await;
}

#[tokio::test]
async fn streaming_with_usage() {
    let (fake, gw) = setup().await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "Tell me a streamed story"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let chunks = openai_chunks(&sse_events(resp).await, "claude");
    assert_eq!(text_of(&chunks), "You said: Tell me a streamed story");
    assert!(chunks.len() > 4, "text arrives in pieces: {}", chunks.len());
    assert_eq!(finish_of(&chunks), ["stop"]);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    );
    let seen = &fake.requests()[0];
    assert_eq!(seen.operation, Some(Operation::ConverseStream));
    assert_eq!(seen.headers["accept"], "application/vnd.amazon.eventstream");

    // Without include_usage: no usage chunk.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true,
                   "messages": [{"role": "user", "content": "again"}]}),
        )
        .await;
    let chunks = openai_chunks(&sse_events(resp).await, "claude");
    assert_eq!(text_of(&chunks), "You said: again");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    gw.stop().await;
}

#[tokio::test]
async fn tool_calls_and_results() {
    let (fake, gw) = setup().await;
    let mut messages = vec![json!({"role": "user", "content": "What's the weather in Paris?"})];
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": messages, "tools": weather_tools(), "tool_choice": "auto"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let message = body["choices"][0]["message"].clone();
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(
        fake.requests()[0].body["toolConfig"]["toolChoice"],
        json!({"auto": {}})
    );

    messages.push(message.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}));
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": messages, "tools": weather_tools()}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The tool said: 18C and sunny"
    );
    let sent = &fake.requests()[1].body["messages"];
    assert_eq!(sent[2]["content"][0]["toolResult"]["toolUseId"], call["id"]);
    gw.stop().await;
}

#[tokio::test]
async fn tool_call_streamed() {
    let (_fake, gw) = setup().await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true, "tools": weather_tools(),
                   "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                   "messages": [{"role": "user", "content": "Paris please"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let chunks = openai_chunks(&sse_events(resp).await, "claude");
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(
        calls.len() >= 3,
        "a start and argument fragments: {calls:?}"
    );
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls[0]["id"].as_str().is_some_and(|id| !id.is_empty()));
    for later in &calls[1..] {
        assert_eq!(later["index"], 0);
        assert!(later.get("id").is_none() && later["function"].get("name").is_none());
    }
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(finish_of(&chunks), ["tool_calls"]);
    gw.stop().await;
}

#[tokio::test]
async fn images_as_data_urls_only() {
    let (fake, gw) = setup().await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==";
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: What is in this picture?"
    );
    assert_eq!(
        fake.requests()[0].body["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": png}}})
    );

    // Bedrock cannot fetch URLs: refused before any call, naming the feature.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let error = error_of(resp).await;
    assert_eq!(error["code"], "unsupported_feature");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("image_url with an http(s) URL"),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 1);
    gw.stop().await;
}

fn assert_vector(got: &Value, text: &str) {
    let want = fake::vector_for(text, None);
    let got: Vec<f64> = got
        .as_array()
        .unwrap_or_else(|| panic!("not a float vector: {got}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "{text}");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - *w as f64).abs() <= 1e-3 * w.abs().max(1.0) as f64,
            "{text}: {got:?} vs {want:?}"
        );
    }
}

#[tokio::test]
async fn titan_embeddings_one_call_per_input() {
    let (fake, gw) = setup().await;
    let inputs: Vec<String> = (0..5).map(|i| format!("titan input number {i}")).collect();
    let resp = gw.embed("titan", json!(inputs)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_vector(&item["embedding"], &inputs[i]);
    }
    // 4 words per input, counted by Titan.
    assert_eq!(body["usage"]["prompt_tokens"], 20);
    let seen = fake.requests();
    assert_eq!(seen.len(), 5);
    let mut sent: Vec<&str> = seen
        .iter()
        .map(|s| {
            assert_eq!(s.operation, Some(Operation::Invoke));
            assert_eq!(s.model_id, TITAN);
            s.body["inputText"].as_str().unwrap()
        })
        .collect();
    sent.sort();
    assert_eq!(sent, inputs.iter().map(String::as_str).collect::<Vec<_>>());
    gw.stop().await;
}

#[tokio::test]
async fn cohere_embeddings_in_batches_of_96() {
    let (fake, gw) = setup().await;
    let inputs: Vec<String> = (0..100).map(|i| format!("cohere text {i}")).collect();
    let resp = gw.embed("cohere", json!(inputs)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 100);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_vector(&item["embedding"], &inputs[i]);
    }
    // Cohere's body has no count: the InvokeModel header's (3 words each).
    assert_eq!(body["usage"]["prompt_tokens"], 300);
    let seen = fake.requests();
    let mut sizes: Vec<usize> = seen
        .iter()
        .map(|s| {
            assert_eq!(s.body["input_type"], "search_document");
            s.body["texts"].as_array().unwrap().len()
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, [4, 96]);
    gw.stop().await;
}

#[tokio::test]
async fn validation_errors_go_back_unretried() {
    let (fake, gw) = setup().await;
    for route in ["claude", "claude-or-mock"] {
        fake.fail_next(Failure::Status {
            status: 400,
            error_type: "ValidationException",
            message: "The model returned the following errors: messages: too long",
            retry_after: None,
        });
        let before = fake.requests().len();
        let resp = gw.chat(route, "hello").await;
        assert_eq!(resp.status(), 400, "{route}");
        let error = error_of(resp).await;
        assert_eq!(
            error,
            json!({"message": "The model returned the following errors: messages: too long",
                   "type": "invalid_request_error", "param": null, "code": "ValidationException"}),
            "{route}"
        );
        assert_eq!(fake.requests().len(), before + 1, "not retried: {route}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn throttling_is_retried_then_reported_as_429() {
    let (fake, gw) = setup().await;
    fake.fail_next(Failure::throttle());
    let resp = gw.chat("claude", "after a throttle").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: after a throttle"
    );
    // Both attempts carried a valid signature (the fake checks it first).
    assert_eq!(fake.requests().len(), 2);

    // Throttled on every attempt: a 429 in the OpenAI envelope.
    fake.fail_next(Failure::throttle());
    fake.fail_next(Failure::Status {
        status: 429,
        error_type: "ThrottlingException",
        message: "Too many requests, please wait before trying again.",
        retry_after: Some(1),
    });
    let resp = gw.chat("claude", "throttled").await;
    assert_eq!(resp.status(), 429);
    assert!(!header(&resp, "retry-after").is_empty());
    let error = error_of(resp).await;
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(error["code"], "upstream_rate_limited");
    assert_eq!(fake.requests().len(), 4);
    gw.stop().await;
}

#[tokio::test]
async fn failover_from_bedrock_to_mock() {
    let (fake, gw) = setup().await;
    // A throttle moves on at once (on_rate_limit: failover).
    fake.fail_next(Failure::throttle());
    let resp = gw.chat("claude-or-mock", "first").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-provider"), "fallback");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "[fallback] You said: first"
    );
    assert_eq!(fake.requests().len(), 1);

    // A 503 is retried, then failed over; for a stream, before its first byte.
    fake.fail_next(Failure::unavailable());
    fake.fail_next(Failure::unavailable());
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude-or-mock", "stream": true,
                   "messages": [{"role": "user", "content": "second"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-provider"), "fallback");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");
    let events = sse_events(resp).await;
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(text_of(&chunks), "[fallback] You said: second");
    assert_eq!(fake.requests().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn failover_from_openai_to_bedrock() {
    let fake = FakeBedrock::start().await;
    let broken = FakeUpstream::start(|_, _| async {
        Reply::Json(
            500,
            json!({"error": {"message": "boom", "type": "server_error"}}),
        )
    })
    .await;
    let extra = format!(
        "  openai:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n",
        broken.base_url()
    );
    let yaml = policy(&fake, &extra).replace(
        "routes:\n",
        &format!(
            "routes:\n  openai-then-bedrock:\n    targets: [{{provider: openai, model: gpt-4o}}, {{provider: bedrock, model: \"{CLAUDE}\"}}]\n    {RETRY}\n"
        ),
    );
    let gw = start(&yaml).await;
    let resp = gw.chat("openai-then-bedrock", "anyone there?").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-provider"), "bedrock");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: anyone there?"
    );
    assert_eq!(broken.calls(), 2);
    assert_eq!(fake.requests().len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn exception_mid_stream_ends_with_an_error_event() {
    let (fake, gw) = setup().await;
    fake.fail_next(Failure::StreamException {
        exception_type: "modelStreamErrorException",
        message: "The model stopped unexpectedly.",
    });
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true,
                   "messages": [{"role": "user", "content": "a long answer please"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let events = sse_events(resp).await;
    let (last, before) = events.split_last().unwrap();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let first: Value = serde_json::from_str(&before[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let error: Value = serde_json::from_str(last).unwrap();
    assert_eq!(error["error"]["code"], "stream_interrupted");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("modelStreamErrorException") && message.contains("stopped unexpectedly"),
        "{message}"
    );
    assert_eq!(fake.requests().len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn error_bodies_are_scrubbed_of_the_secret_key() {
    let secret = fake::credentials().secret_access_key;
    let echo = secret.clone();
    // Something in front of Bedrock that quotes the credentials back.
    let leaky = FakeUpstream::start(move |_, _| {
        let echo = echo.clone();
        async move {
            Reply::JsonHeaders(
                400,
                json!({"message": format!("bad request signed with {echo}")}),
                vec![("x-amzn-errortype", "ValidationException".to_string())],
            )
        }
    })
    .await;
    let fake = FakeBedrock::start().await;
    let yaml = policy(&fake, "").replace(&fake.base_url(), &format!("http://{}", leaky.addr));
    let gw = start(&yaml).await;
    let resp = gw.chat("claude", "hi").await;
    assert_eq!(resp.status(), 400);
    let error = error_of(resp).await;
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("bad request signed with"), "{message}");
    assert!(!message.contains(&secret), "{message}");
    let sent = &leaky.requests()[0];
    assert!(
        sent.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 ")
    );
    gw.stop().await;
}

#[tokio::test]
async fn policy_errors_at_their_lines() {
    let yaml = "providers:
  aws:
    kind: bedrock
    base_url: http://127.0.0.1:9
    secret_key_env: BEDROCK_TEST_SECRET
    session_token_env: BEDROCK_TEST_TOKEN
    cohere_truncate: sideways
routes:
  r:
    targets: [{provider: aws, model: m}]
";
    let text = try_start(yaml)
        .await
        .err()
        .map(|e| e.to_string())
        .expect("a bad policy must not start");
    for expected in [
        "policy.yaml:3: providers.aws.region: is required for kind bedrock",
        "policy.yaml:5: providers.aws.secret_key_env: unknown field `secret_key_env` for kind bedrock",
        "policy.yaml:7: providers.aws.cohere_truncate: \"sideways\" is not one of NONE, START, END",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The default credential variables are not set in this environment.
    assert!(
        text.contains(
            "providers.aws.access_key_id_env: environment variable AWS_ACCESS_KEY_ID is not set"
        ),
        "{text}"
    );
}
