//! `POST /v1/responses` through the real gateway over HTTP: passed through
//! to an openai-kind fake (body unchanged but for `model`, JSON and SSE),
//! translated to chat for the mock, the Anthropic fake and the Azure fake
//! (JSON and SSE, tools round trip, json_schema), failover from a
//! passthrough target to a translated one, and the 400s.

use crate::common;

use common::anthropic::FakeAnthropic;
use common::azure::FakeAzure;
use common::*;
use serde_json::{Value, json};
use switchyard::api::sse::SseDecoder;

/// A Responses API object as OpenAI documents it, naming the model it got.
fn upstream_response(body: &Value) -> Value {
    json!({"id": "resp_up_1", "object": "response", "created_at": 1, "status": "completed",
           "model": body["model"], "output": [{"type": "message", "id": "msg_1", "status": "completed",
           "role": "assistant", "content": [{"type": "output_text", "text": "upstream says hi",
           "annotations": []}]}], "usage": {"input_tokens": 1, "output_tokens": 3, "total_tokens": 4},
           "extra_upstream_field": true})
}

fn upstream_events() -> Vec<String> {
    let r = json!({"id": "resp_up_1", "object": "response", "status": "in_progress", "output": []});
    vec![
        format!(
            "event: response.created\ndata: {}\n\n",
            json!({"type": "response.created", "sequence_number": 0, "response": r})
        ),
        format!(
            "event: response.output_text.delta\ndata: {}\n\n",
            json!({"type": "response.output_text.delta", "sequence_number": 1, "delta": "hi"})
        ),
        format!(
            "event: response.completed\ndata: {}\n\n",
            json!({"type": "response.completed", "sequence_number": 2, "response": r})
        ),
    ]
}

async fn openai_fake() -> FakeUpstream {
    FakeUpstream::start(|s, _| async move {
        if s.path != "/v1/responses" {
            return Reply::Json(404, json!({"error": {"message": "no", "type": "x"}}));
        }
        if s.body["stream"] == true {
            Reply::Sse(upstream_events(), std::time::Duration::ZERO)
        } else {
            Reply::Json(200, upstream_response(&s.body))
        }
    })
    .await
}

/// (event name, payload) of an SSE body, checking `type` matches the name.
fn events(text: &str) -> Vec<(String, Value)> {
    SseDecoder::new()
        .decode(text.as_bytes())
        .into_iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["type"], e.event.as_str(), "{v}");
            (e.event, v)
        })
        .collect()
}

fn output_text(resp: &Value) -> String {
    resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "message")
        .flat_map(|o| o["content"].as_array().unwrap().iter())
        .filter_map(|c| c["text"].as_str())
        .collect()
}

#[tokio::test]
async fn openai_kind_targets_get_the_body_unchanged_but_for_model() {
    let up = openai_fake().await;
    let yaml = format!(
        "{}routes:\n  r:\n    targets: [{{provider: p0, model: gpt-up}}]\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let sent = json!({"model": "r", "input": [{"role": "user", "content": "hi"}],
                      "previous_response_id": "resp_prev", "store": true,
                      "tools": [{"type": "web_search"}], "unknown_field": {"x": [1, 2]}});
    let resp = gw.post("/v1/responses", sent.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "p0");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, upstream_response(&json!({"model": "gpt-up"})));
    let seen = &up.requests()[0];
    assert_eq!(seen.path, "/v1/responses");
    let mut expected = sent.clone();
    expected["model"] = json!("gpt-up");
    assert_eq!(seen.body, expected);

    let mut streamed = sent;
    streamed["stream"] = json!(true);
    let resp = gw.post("/v1/responses", streamed.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.text().await.unwrap(), upstream_events().concat());
    streamed["model"] = json!("gpt-up");
    assert_eq!(up.requests()[1].body, streamed);
    assert_eq!(
        gw.metric("switchyard_requests_total{endpoint=\"responses\",route=\"r\",status=\"200\"}")
            .await,
        2.0
    );
    gw.stop().await;
}

const MOCK_ROUTE: &str =
    "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n";

#[tokio::test]
async fn the_mock_answers_through_translation_json_and_sse() {
    let gw = gateway(MOCK_ROUTE).await;
    let resp = gw
        .post(
            "/v1/responses",
            json!({"model": "r", "input": "hello there", "instructions": "Be brief."}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(output_text(&body), "[m] You said: hello there");
    assert_eq!(body["instructions"], "Be brief.");
    assert!(
        body["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );

    let resp = gw
        .post(
            "/v1/responses",
            json!({"model": "r", "input": "stream me", "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let ev = events(&resp.text().await.unwrap());
    assert_eq!(ev[0].0, "response.created");
    assert_eq!(ev[1].0, "response.in_progress");
    let deltas: String = ev
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "[m] You said: stream me");
    let (last, done) = ev.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(output_text(&done["response"]), deltas);
    for (i, (_, v)) in ev.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as u64);
    }
    gw.stop().await;
}

#[tokio::test]
async fn stateful_features_on_translated_routes_are_400s_naming_feature_and_route() {
    // (`store` and `previous_response_id` are served by the gateway itself:
    // responses_state.rs.)
    let gw = gateway(MOCK_ROUTE).await;
    for (extra, name) in [
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"background": true}), "background"),
        (json!({"tools": [{"type": "web_search"}]}), "web_search"),
        (
            json!({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
            "code_interpreter",
        ),
    ] {
        let mut body = json!({"model": "r", "input": "x"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = gw.post("/v1/responses", body).await;
        assert_eq!(resp.status(), 400, "{name}");
        let err = error_of(resp).await;
        assert_eq!(err["code"], "unsupported_feature", "{err}");
        let msg = err["message"].as_str().unwrap();
        assert!(msg.contains(name) && msg.contains("`r`"), "{msg}");
    }
    let resp = gw
        .post("/v1/responses", json!({"model": "r", "input": 5}))
        .await;
    assert_eq!(resp.status(), 400);
    let resp = gw
        .post("/v1/responses", json!({"model": "nope", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 404);
    let resp = gw.get("/v1/responses").await;
    assert_eq!(resp.status(), 405);
    gw.stop().await;
}

fn anthropic_yaml(fake: &FakeAnthropic, first: &str) -> String {
    format!(
        "providers:\n  claude:\n    kind: anthropic\n    base_url: {}\n    api_key_env: {}\n{first}\
         routes:\n  r:\n    targets: [{}{{provider: claude, model: claude-fake-1}}]\n    retry: {{max_attempts: 1}}\n",
        fake.base_url(),
        common::anthropic::KEY_ENV,
        if first.is_empty() {
            ""
        } else {
            "{provider: p0, model: gpt-up}, "
        }
    )
}

#[tokio::test]
async fn anthropic_tools_round_trip_json_and_stream() {
    let fake = FakeAnthropic::start().await;
    let gw = common::anthropic::gateway(&anthropic_yaml(&fake, "")).await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]}}]);
    let ask = json!({"role": "user", "content": "What is the weather in Paris?"});
    let resp = gw
        .post(
            "/v1/responses",
            json!({"model": "r", "tools": tools, "input": [ask]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let call = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .cloned()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(call["name"], "get_weather");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["location"], "Paris");
    let mut echoed = tools.clone();
    echoed[0]["strict"] = json!(false);
    assert_eq!(body["tools"], echoed, "tools are echoed, with `strict`");

    // The tool result goes back as a function_call_output item.
    let input = json!([ask, {"type": "function_call", "call_id": call["call_id"], "name": "get_weather",
                       "arguments": call["arguments"]},
                      {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 21C"}]);
    let resp = gw
        .post(
            "/v1/responses",
            json!({"model": "r", "tools": tools, "input": input}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(output_text(&body).contains("sunny, 21C"), "{body}");
    let sent = &fake.requests()[1].body;
    assert_eq!(
        sent["messages"][1]["content"][0]["type"], "tool_use",
        "{sent}"
    );

    // Streamed: a function_call item with its arguments.
    let resp = gw
        .post(
            "/v1/responses",
            json!({"model": "r", "tools": tools, "input": [ask], "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let ev = events(&resp.text().await.unwrap());
    let args: String = ev
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap()["location"],
        "Paris"
    );
    let (last, done) = ev.last().unwrap();
    assert_eq!(last, "response.completed");
    assert!(
        done["response"]["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{done}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_route_fails_over_from_passthrough_to_translation() {
    let broken = FakeUpstream::down(500).await;
    let fake = FakeAnthropic::start().await;
    let p0 = providers_yaml(&[&broken], "");
    let p0 = p0.trim_start_matches("providers:\n");
    let gw = common::anthropic::gateway(&anthropic_yaml(&fake, p0)).await;
    let resp = gw
        .post("/v1/responses", json!({"model": "r", "input": "hello"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "claude");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(output_text(&body), "Fake Claude heard: hello");
    assert_eq!(broken.requests()[0].path, "/v1/responses");
    let resp = gw
        .post(
            "/v1/responses",
            json!({"model": "r", "input": "hello", "stream": true}),
        )
        .await;
    let ev = events(&resp.text().await.unwrap());
    assert_eq!(ev.last().unwrap().0, "response.completed");
    gw.stop().await;
}

#[tokio::test]
async fn json_schema_becomes_response_format_for_a_chat_target() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let yaml = format!(
        "providers:\n  az:\n    kind: azure\n    endpoint: {}\n    api_key_env: TEST_UPSTREAM_KEY\n    deployments:\n      gpt-4o: prod-4o\nroutes:\n  r:\n    targets: [{{provider: az, model: gpt-4o}}]\n",
        fake.endpoint()
    );
    let gw = gateway(&yaml).await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": false});
    let resp = gw
        .post("/v1/responses", json!({"model": "r", "input": "a city", "max_output_tokens": 30,
            "text": {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": true}}}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["text"]["format"]["name"], "city");
    let sent = &fake.requests()[0].body;
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}})
    );
    assert_eq!(sent["max_completion_tokens"], 30);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "a city"}])
    );
    gw.stop().await;
}
