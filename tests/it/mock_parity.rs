//! The built-in `mock` kind behaves like OpenAI where SDKs and frameworks
//! look: `stream_options.include_usage`, `n`, token limits, tool calls
//! (forced, named, auto, streamed in OpenAI's chunk shape) and structured
//! outputs, all through the gateway on the shipped policies.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// The shipped policy folder as one document (its files share no key).
fn shipped() -> String {
    ["00-server.yaml", "10-providers.yaml", "20-routes.yaml"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(format!("{}/policies/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `data:` payloads of an SSE body; `[DONE]` must end it.
fn events(text: &str) -> Vec<Value> {
    let data: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn chat(gw: &TestGateway, body: Value) -> Value {
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn stream(gw: &TestGateway, mut body: Value) -> Vec<Value> {
    body["stream"] = json!(true);
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    events(&r.text().await.unwrap())
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn streams_carry_usage_only_when_asked_as_openai_does() {
    let gw = gateway(&shipped()).await;
    let asked = stream(
        &gw,
        json!({"model": "gpt-4o", "messages": user("count my words please"),
               "stream_options": {"include_usage": true}}),
    )
    .await;
    let (last, rest) = asked.split_last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 4);
    let u = &last["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap())
    );
    assert!(rest.len() > 2);
    for e in rest {
        assert_eq!(e["object"], "chat.completion.chunk");
        assert!(e.get("usage").is_some_and(Value::is_null), "{e}");
    }
    let plain = stream(&gw, json!({"model": "gpt-4o", "messages": user("hi")})).await;
    assert!(plain.iter().all(|e| e.get("usage").is_none()));
    assert!(
        plain
            .iter()
            .all(|e| e["choices"].as_array().unwrap().len() == 1)
    );
    gw.stop().await;
}

#[tokio::test]
async fn n_gives_that_many_choices_and_token_limits_cut_with_length() {
    let gw = gateway(&shipped()).await;
    let v = chat(
        &gw,
        json!({"model": "gpt-4o", "messages": user("hello"), "n": 3}),
    )
    .await;
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"]["content"], choices[0]["message"]["content"]);
    }
    let evs = stream(
        &gw,
        json!({"model": "gpt-4o", "messages": user("hello"), "n": 2}),
    )
    .await;
    for i in 0..2 {
        let finishes: Vec<&Value> = evs
            .iter()
            .map(|e| &e["choices"][0])
            .filter(|c| c["index"] == i && !c["finish_reason"].is_null())
            .collect();
        assert_eq!(finishes.len(), 1, "one finish for choice {i}");
        assert_eq!(finishes[0]["finish_reason"], "stop");
    }

    for limit in ["max_tokens", "max_completion_tokens"] {
        let mut body = json!({"model": "gpt-4o", "messages": user("a b c d e f g")});
        body[limit] = json!(3);
        let v = chat(&gw, body.clone()).await;
        let c = &v["choices"][0];
        assert_eq!(c["finish_reason"], "length", "{limit}");
        let text = c["message"]["content"].as_str().unwrap();
        assert_eq!(text.split(' ').count(), 3, "{text}");
        assert!(text.ends_with("You said:"), "{text}");
        let evs = stream(&gw, body).await;
        let streamed: String = evs
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        // Weighted route: either mock may stream it; the cut is the same.
        assert_eq!(streamed.split(' ').count(), 3, "{streamed}");
        assert!(streamed.ends_with("You said:"), "{streamed}");
        assert_eq!(evs.last().unwrap()["choices"][0]["finish_reason"], "length");
    }
    let v = chat(
        &gw,
        json!({"model": "gpt-4o", "messages": user("short"), "max_tokens": 100}),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    gw.stop().await;
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 2},
                "detailed": {"type": "boolean"}},
                "required": ["location", "unit", "days"]}}},
        {"type": "function", "function": {"name": "lookup_order",
            "parameters": {"type": "object", "properties": {
                "order_id": {"type": "string"}, "items": {"type": "array",
                "items": {"type": "number"}}}, "required": ["order_id", "items"]}}}
    ])
}

fn call_of(v: &Value) -> (&str, Value) {
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls", "{v}");
    assert!(c["message"]["content"].is_null());
    let call = &c["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let args = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    (call["function"]["name"].as_str().unwrap(), args)
}

#[tokio::test]
async fn tools_are_called_when_forced_named_or_asked_for() {
    let gw = gateway(&shipped()).await;
    let ask = |text: &str, choice: Value| {
        json!({"model": "gpt-4o-mini", "messages": user(text), "tools": tools(),
               "tool_choice": choice})
    };
    let v = chat(&gw, ask("anything", json!("required"))).await;
    let (name, args) = call_of(&v);
    assert_eq!(name, "get_weather");
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius", "days": 2})
    );
    let named = json!({"type": "function", "function": {"name": "lookup_order"}});
    let v = chat(&gw, ask("anything", named)).await;
    let (name, args) = call_of(&v);
    assert_eq!(name, "lookup_order");
    assert!(
        args["order_id"].is_string() && args["items"][0].is_number(),
        "{args}"
    );
    let v = chat(&gw, ask("What's the weather in Paris?", json!("auto"))).await;
    assert_eq!(call_of(&v).0, "get_weather");
    let v = chat(&gw, ask("please lookup_order 42", json!("auto"))).await;
    assert_eq!(call_of(&v).0, "lookup_order");
    for (text, choice) in [("hello", json!("auto")), ("weather?", json!("none"))] {
        let v = chat(&gw, ask(text, choice)).await;
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["choices"][0]["message"]["content"].is_string());
    }
    // With the tool's result in, the model answers in text.
    let v = chat(
        &gw,
        json!({"model": "gpt-4o-mini", "tools": tools(), "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
             "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}]}),
    )
    .await;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("sunny, 21C"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_follow_openai_chunk_shape() {
    let gw = gateway(&shipped()).await;
    let evs = stream(
        &gw,
        json!({"model": "gpt-4o", "messages": user("weather in Oslo"), "tools": tools(),
               "stream_options": {"include_usage": true}}),
    )
    .await;
    let deltas: Vec<&Value> = evs
        .iter()
        .filter(|e| !e["choices"].as_array().unwrap().is_empty())
        .map(|e| &e["choices"][0]["delta"])
        .collect();
    let first = &deltas[0]["tool_calls"][0];
    assert_eq!(deltas[0]["role"], "assistant");
    assert_eq!(first["index"], 0);
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    assert_eq!(first["function"]["arguments"], "");
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    let fragments: Vec<&Value> = deltas[1..]
        .iter()
        .filter_map(|d| d.get("tool_calls"))
        .map(|t| &t[0])
        .collect();
    assert!(fragments.len() > 1);
    let mut args = String::new();
    for f in fragments {
        assert_eq!(f["index"], 0);
        assert!(f.get("id").is_none() && f["function"].get("name").is_none());
        args.push_str(f["function"]["arguments"].as_str().unwrap());
    }
    let args: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(args["location"], "San Francisco, CA");
    let finish = evs
        .iter()
        .rev()
        .find_map(|e| e["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    assert!(
        evs.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    gw.stop().await;
}

#[tokio::test]
async fn structured_outputs_match_the_schema_or_are_a_json_object() {
    let gw = gateway(&shipped()).await;
    let schema = json!({"type": "object", "additionalProperties": false,
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                       "tags": {"type": "array", "items": {"type": "string"}},
                       "address": {"$ref": "#/$defs/Address"},
                       "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
        "required": ["name", "age", "tags", "address", "nickname"],
        "$defs": {"Address": {"type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city", "zip"]}}});
    let v = chat(
        &gw,
        json!({"model": "gpt-4o-mini", "messages": user("extract the person"),
               "response_format": {"type": "json_schema",
                   "json_schema": {"name": "person", "strict": true, "schema": schema}}}),
    )
    .await;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    let out: Value = serde_json::from_str(text).unwrap();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["address", "age", "name", "nickname", "tags"]);
    assert!(out["name"].is_string() && out["age"].is_i64() && out["tags"].is_array());
    assert!(out["address"]["city"].is_string() && out["address"]["zip"].is_string());
    assert!(out["nickname"].is_string());
    let v = chat(
        &gw,
        json!({"model": "gpt-4o", "messages": user("reply in JSON"),
               "response_format": {"type": "json_object"}}),
    )
    .await;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    let out: Value = serde_json::from_str(text).unwrap();
    assert_eq!(out["answer"], "reply in JSON");
    gw.stop().await;
}
