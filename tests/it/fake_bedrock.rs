//! The Bedrock translators against the fake Bedrock Runtime, over real HTTP
//! on 127.0.0.1:0: OpenAI request -> Converse -> signed call -> fake ->
//! translated answer, for JSON, event-stream and embeddings, and failures.

use crate::common;

use common::bedrock::{self as fake, Failure, FakeBedrock, Operation};
use serde_json::{Map, Value, json};
use switchyard::api::sse::SseDecoder;
use switchyard::providers::bedrock::{
    self, AwsCredentials, BedrockChatSettings, BedrockEmbedSettings, BedrockStream,
    EventStreamDecoder,
};
use switchyard::providers::translate::TranslateError;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

async fn converse(fake: &FakeBedrock, openai: Value) -> reqwest::Response {
    let body = bedrock::chat_request(&obj(openai), MODEL, &BedrockChatSettings::default()).unwrap();
    let client = reqwest::Client::new();
    fake::send(
        &client,
        fake,
        &bedrock::converse_path(MODEL, false),
        &body,
        &fake::credentials(),
    )
    .await
}

fn error_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn plain_chat_round_trip() {
    let fake = FakeBedrock::start().await;
    let resp = converse(&fake, json!({"model": "gw-model", "max_tokens": 64, "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi there"}]})).await;
    assert_eq!(resp.status(), 200);
    let out = bedrock::chat_response(&resp.bytes().await.unwrap(), "gw-model").unwrap();
    assert_eq!(
        out["choices"][0]["message"],
        json!({"role": "assistant", "content": "You said: Hi there"})
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    );

    let seen = &fake.requests()[0];
    assert_eq!(seen.operation, Some(Operation::Converse));
    assert_eq!(
        seen.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(seen.model_id, MODEL);
    assert_eq!(seen.body["system"], json!([{"text": "Be terse."}]));
    assert_eq!(
        seen.body["inferenceConfig"],
        json!({"maxTokens": 64, "temperature": 0.2})
    );
    let auth = seen.headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDFAKEBEDROCK/"),
        "{auth}"
    );
    assert!(
        auth.contains("/us-east-1/bedrock/aws4_request, SignedHeaders="),
        "{auth}"
    );

    let short = converse(
        &fake,
        json!({"max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    let out = bedrock::chat_response(&short.bytes().await.unwrap(), "m").unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn tool_call_and_tool_result_round_trip() {
    let fake = FakeBedrock::start().await;
    let mut messages = vec![json!({"role": "user", "content": "What's the weather in Paris?"})];
    let resp = converse(
        &fake,
        json!({"messages": messages, "tools": weather_tools(), "tool_choice": "auto"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let out = bedrock::chat_response(&resp.bytes().await.unwrap(), "m").unwrap();
    let message = &out["choices"][0]["message"];
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));

    // Send the call back with its result, as an OpenAI client would.
    messages.push(message.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}));
    let resp = converse(
        &fake,
        json!({"messages": messages, "tools": weather_tools()}),
    )
    .await;
    assert_eq!(
        resp.status(),
        200,
        "{:?}",
        fake.requests().last().map(|s| &s.body)
    );
    let out = bedrock::chat_response(&resp.bytes().await.unwrap(), "m").unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "The tool said: 18C and sunny"
    );
    let sent = &fake.requests()[1].body["messages"];
    assert_eq!(
        sent[1]["content"][0]["toolUse"]["input"],
        json!({"city": "Paris"})
    );
    assert_eq!(sent[2]["content"][0]["toolResult"]["toolUseId"], call["id"]);
}

/// Streams a ConverseStream answer through the decoder and translator;
/// returns the OpenAI chunks (`Value::Null` for [DONE]) or the first error.
async fn stream(fake: &FakeBedrock, openai: Value) -> Result<Vec<Value>, TranslateError> {
    let body = bedrock::chat_request(&obj(openai), MODEL, &BedrockChatSettings::default()).unwrap();
    let client = reqwest::Client::new();
    let path = bedrock::converse_path(MODEL, true);
    let mut resp = fake::send(&client, fake, &path, &body, &fake::credentials()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let mut decoder = EventStreamDecoder::new();
    let mut translator = BedrockStream::new("gw-model", true);
    let (mut messages, mut out, mut chunks) = (Vec::new(), Vec::new(), 0);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        chunks += 1;
        decoder.feed(&chunk, &mut messages)?;
        for m in messages.drain(..) {
            translator.on_message(&m, &mut out)?;
        }
    }
    assert!(chunks > 10, "frames arrive split over many chunks");
    decoder.finish()?;
    translator.finish(&mut out)?;
    let mut sse = SseDecoder::new();
    let events: Vec<_> = out.iter().flat_map(|b| sse.decode(b)).collect();
    Ok(events
        .iter()
        .map(|e| {
            if e.data == "[DONE]" {
                Value::Null
            } else {
                serde_json::from_str(&e.data).unwrap()
            }
        })
        .collect())
}

#[tokio::test]
async fn streamed_text_with_usage() {
    let fake = FakeBedrock::start().await;
    let chunks = stream(
        &fake,
        json!({"stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Stream me something"}]}),
    )
    .await
    .unwrap();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "You said: Stream me something");
    let n = chunks.len();
    assert_eq!(chunks[n - 3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 2]["choices"], json!([]));
    assert_eq!(chunks[n - 2]["usage"]["total_tokens"], 18);
    assert_eq!(chunks[n - 1], Value::Null);
    assert_eq!(
        fake.requests()[0].path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
}

#[tokio::test]
async fn streamed_tool_call() {
    let fake = FakeBedrock::start().await;
    let chunks = stream(
        &fake,
        json!({"stream": true, "tools": weather_tools(), "tool_choice": "required",
        "messages": [{"role": "user", "content": "Use the tool"}]}),
    )
    .await
    .unwrap();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], "tooluse_fake_0001");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls.len() >= 3, "name chunk plus argument fragments");
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Paris"})
    );
    assert!(
        calls[1..]
            .iter()
            .all(|c| c.get("id").is_none() && c["index"] == 0)
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    assert_eq!(
        fake.requests()[0].body["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
}

#[tokio::test]
async fn exception_frame_mid_stream() {
    let fake = FakeBedrock::start().await;
    fake.fail_next(Failure::StreamException {
        exception_type: "throttlingException",
        message: "Slow down",
    });
    let err = stream(
        &fake,
        json!({"messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, TranslateError::BadResponse(m) if m.contains("throttlingException: Slow down")),
        "{err}"
    );
}

#[tokio::test]
async fn unsigned_and_badly_signed_requests_are_refused() {
    let fake = FakeBedrock::start().await;
    let body = bedrock::chat_request(
        &obj(json!({"messages": [{"role": "user", "content": "Hi"}]})),
        MODEL,
        &BedrockChatSettings::default(),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let url = format!(
        "{}{}",
        fake.base_url(),
        bedrock::converse_path(MODEL, false)
    );
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let ty = error_type(&resp).unwrap();
    assert!(ty.starts_with("UnrecognizedClientException:"), "{ty}");
    let class = bedrock::classify_error(403, Some(&ty), &resp.bytes().await.unwrap());
    assert!(class.moves_on && !class.retryable);
    assert_eq!(
        class.message,
        "The security token included in the request is invalid."
    );

    let mut wrong_secret = fake::credentials();
    wrong_secret.secret_access_key = "not-the-secret".into();
    let no_token = AwsCredentials {
        session_token: None,
        ..fake::credentials()
    };
    let path = bedrock::converse_path(MODEL, false);
    for (creds, expected) in [
        (wrong_secret, "InvalidSignatureException:"),
        (no_token, "UnrecognizedClientException:"),
    ] {
        let resp = fake::send(&client, &fake, &path, &body, &creds).await;
        assert_eq!(resp.status(), 403);
        let ty = error_type(&resp).unwrap();
        assert!(ty.starts_with(expected), "{ty}");
    }
}

#[tokio::test]
async fn throttling_overload_and_validation_errors() {
    let fake = FakeBedrock::start().await;
    let hi = json!({"messages": [{"role": "user", "content": "Hi"}]});
    fake.fail_next(Failure::throttle());
    let resp = converse(&fake, hi.clone()).await;
    assert_eq!(resp.status(), 429);
    let ty = error_type(&resp);
    let class = bedrock::classify_error(429, ty.as_deref(), &resp.bytes().await.unwrap());
    assert!(class.retryable && class.moves_on && !class.trips_breaker);
    assert_eq!(
        class.message,
        "Too many requests, please wait before trying again."
    );

    fake.fail_next(Failure::unavailable());
    let resp = converse(&fake, hi.clone()).await;
    assert_eq!(resp.status(), 503);
    let ty = error_type(&resp);
    let class = bedrock::classify_error(503, ty.as_deref(), &resp.bytes().await.unwrap());
    assert!(class.retryable && class.trips_breaker);

    // Converse refuses consecutive assistant-first conversations; the class
    // says the request itself is wrong.
    let client = reqwest::Client::new();
    let bad = json!({"messages": [{"role": "assistant", "content": [{"text": "I start"}]}]});
    let resp = fake::send(
        &client,
        &fake,
        &bedrock::converse_path(MODEL, false),
        &bad,
        &fake::credentials(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let ty = error_type(&resp);
    assert!(ty.as_deref().unwrap().starts_with("ValidationException:"));
    let class = bedrock::classify_error(400, ty.as_deref(), &resp.bytes().await.unwrap());
    assert!(!class.retryable && !class.moves_on);
    assert!(
        class.message.contains("must start with a user message"),
        "{}",
        class.message
    );
    // The fake recovered after its injected failures.
    assert_eq!(converse(&fake, hi).await.status(), 200);
}

#[tokio::test]
async fn titan_embeddings_one_input_per_call() {
    let fake = FakeBedrock::start().await;
    let model = "amazon.titan-embed-text-v2:0";
    assert_eq!(bedrock::max_batch_inputs(model), 1);
    let extra = obj(json!({"dimensions": 256, "user": "u"}));
    let client = reqwest::Client::new();
    for text in ["first text", "second one here"] {
        let inputs = [json!(text)];
        let body = bedrock::embed_request(&inputs, model, &extra, &BedrockEmbedSettings::default())
            .unwrap();
        let resp = fake::send(
            &client,
            &fake,
            &bedrock::invoke_path(model),
            &body,
            &fake::credentials(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let reply = bedrock::embed_response(model, &resp.bytes().await.unwrap(), 1).unwrap();
        assert_eq!(reply.vectors, vec![fake::vector_for(text, Some(256))]);
        assert_eq!(reply.prompt_tokens, text.split_whitespace().count() as u64);
    }
    let seen = fake.requests();
    assert_eq!(seen[0].path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(
        seen[1].body,
        json!({"inputText": "second one here", "dimensions": 256})
    );
}

#[tokio::test]
async fn cohere_embeddings_in_one_batch() {
    let fake = FakeBedrock::start().await;
    let model = "cohere.embed-english-v3";
    let inputs: Vec<Value> = (0..96).map(|i| json!(format!("text number {i}"))).collect();
    let body = bedrock::embed_request(
        &inputs,
        model,
        &Map::new(),
        &BedrockEmbedSettings::default(),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let resp = fake::send(
        &client,
        &fake,
        &bedrock::invoke_path(model),
        &body,
        &fake::credentials(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(bedrock::input_token_count(resp.headers()), Some(96 * 3));
    let reply = bedrock::embed_response(model, &resp.bytes().await.unwrap(), 96).unwrap();
    assert_eq!(reply.vectors.len(), 96);
    assert_eq!(reply.vectors[95], fake::vector_for("text number 95", None));
    assert_eq!(fake.requests()[0].body["input_type"], "search_document");

    // Without input_type the fake answers Cohere's own validation error.
    let resp = fake::send(
        &client,
        &fake,
        &bedrock::invoke_path(model),
        &json!({"texts": ["a"]}),
        &fake::credentials(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let ty = error_type(&resp);
    assert!(!bedrock::classify_error(400, ty.as_deref(), &resp.bytes().await.unwrap()).moves_on);
}
