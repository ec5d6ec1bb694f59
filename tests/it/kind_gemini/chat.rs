//! Chat through a `gemini` target: JSON, SSE with usage, tool calls
//! (whole and streamed, with the tool result round trip) and images.

use super::*;

#[tokio::test]
async fn plain_chat_is_translated_both_ways() {
    let fake = FakeGemini::start().await;
    let yaml = format!(
        "providers:\n{}{}",
        gemini("g", &fake, "    default_max_tokens: 64\n"),
        route(&["g"], "")
    );
    let gw = gateway(&yaml).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "temperature": 0.3, "user": "u-1", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello there"}
            ]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "g");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Echo: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );

    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path,
        format!("/v1beta/models/{MODEL}:generateContent")
    );
    assert_eq!(seen[0].query, None, "the key never goes in the query");
    assert_eq!(seen[0].headers["x-goog-api-key"], GEMINI_KEY);
    assert_eq!(
        seen[0].body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        seen[0].body["generationConfig"],
        json!({"maxOutputTokens": 64, "temperature": 0.3})
    );
    gw.stop().await;
}

#[tokio::test]
async fn streaming_with_usage_is_valid_openai_chunks() {
    let fake = FakeGemini::start().await;
    let gw = gateway(&format!(
        "providers:\n{}{}",
        gemini("g", &fake, ""),
        route(&["g"], "")
    ))
    .await;
    let text = "the quick brown fox jumps over";
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": text}]}),
        )
        .await;
    let (chunks, done) = sse(resp).await;
    assert!(done, "stream ends with [DONE]");
    assert_chunks(&chunks);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, format!("Echo: {text}"));
    // The fake streams two words per event: the text came in pieces.
    let pieces = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(pieces >= 3, "{pieces} content chunks");
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finishes.len(), 1);
    assert_eq!(finishes[0]["choices"][0]["finish_reason"], "stop");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13})
    );
    let seen = &fake.requests()[0];
    assert_eq!(
        seen.path,
        format!("/v1beta/models/{MODEL}:streamGenerateContent")
    );
    assert_eq!(seen.query.as_deref(), Some("alt=sse"));

    // Without include_usage: no usage chunk.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let (chunks, done) = sse(resp).await;
    assert!(done);
    assert_chunks(&chunks);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    gw.stop().await;
}

#[tokio::test]
async fn tool_calls_and_tool_results_round_trip() {
    let fake = FakeGemini::start().await;
    let gw = gateway(&format!(
        "providers:\n{}{}",
        gemini("g", &fake, ""),
        route(&["g"], "")
    ))
    .await;
    let ask = json!({"role": "user", "content": "What's the weather in Paris?"});
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "tools": weather_tools(), "tool_choice": "auto", "messages": [ask]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    let id = call["id"].as_str().unwrap().to_string();
    assert!(!id.is_empty());
    let declared = &fake.requests()[0].body["tools"][0]["functionDeclarations"][0];
    assert_eq!(declared["name"], "get_weather");
    assert_eq!(declared["parameters"]["type"], "OBJECT");
    assert_eq!(
        fake.requests()[0].body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );

    // The tool result goes back as a functionResponse answering that call.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "tools": weather_tools(), "messages": [
                ask,
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": id, "content": "{\"temp_c\": 21}"}
            ]}),
        )
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Tool results: get_weather="),
        "{content}"
    );
    assert!(content.contains("21"), "{content}");
    let contents = &fake.requests()[1].body["contents"];
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );
    gw.stop().await;
}

#[tokio::test]
async fn tool_calls_stream_as_openai_deltas() {
    let fake = FakeGemini::start().await;
    // native_json_schema: the parameters go as JSON Schema, untouched.
    let yaml = format!(
        "providers:\n{}{}",
        gemini("g", &fake, "    native_json_schema: true\n"),
        route(&["g"], "")
    );
    let gw = gateway(&yaml).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "stream": true, "tools": weather_tools(),
                   "messages": [{"role": "user", "content": "weather in Paris please"}]}),
        )
        .await;
    let (chunks, done) = sse(resp).await;
    assert!(done);
    assert_chunks(&chunks);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls.len(), 1, "{chunks:?}");
    let call = &calls[0][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    let declared = &fake.requests()[0].body["tools"][0]["functionDeclarations"][0];
    assert_eq!(
        declared["parametersJsonSchema"],
        weather_tools()[0]["function"]["parameters"]
    );
    assert!(declared.get("parameters").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn images_go_as_inline_data_and_file_data() {
    let fake = FakeGemini::start().await;
    let gw = gateway(&format!(
        "providers:\n{}{}",
        gemini("g", &fake, ""),
        route(&["g"], "")
    ))
    .await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "r", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Echo: What is this? (+2 media)"
    );
    let parts = &fake.requests()[0].body["contents"][0]["parts"];
    assert_eq!(
        parts[1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        parts[2]["fileData"]["fileUri"],
        "https://example.com/cat.jpg"
    );
    gw.stop().await;
}
