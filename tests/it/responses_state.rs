//! Stateful Responses on translated routes, served by the gateway itself:
//! `store` (the API's default) keeps the conversation, `previous_response_id`
//! continues it (the translated target gets the whole conversation, seen
//! by the Azure fake on 127.0.0.1:0), `GET` / `DELETE /v1/responses/{id}`
//! read and delete it, `GET .../input_items` lists its items a page at a time, JSON and SSE, scoped to the caller's key, bounded by
//! `state.responses.max_entry_bytes`. Two replicas on one Redis are in
//! `replicas.rs`.

use crate::common;

use common::azure::FakeAzure;
use common::*;
use serde_json::{Value, json};
use switchyard::api::sse::SseDecoder;

const KEYS: &str = "server: {auth: required}\nkeys:\n  ada:\n    secret_env: ADA_KEY\n  bob:\n    secret_env: BOB_KEY\n";

fn policy(fake: &FakeAzure, state: &str) -> String {
    format!(
        "{KEYS}{state}providers:\n  az:\n    kind: azure\n    endpoint: {}\n    api_key_env: TEST_UPSTREAM_KEY\n    deployments:\n      gpt-4o: prod-4o\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{{provider: az, model: gpt-4o}}]\n  mocked:\n    targets: [{{provider: m}}]\n",
        fake.endpoint()
    )
}

async fn start(fake: &FakeAzure, state: &str) -> TestGateway {
    gateway_env(
        &policy(fake, state),
        &[("ADA_KEY", "sk-ada-1"), ("BOB_KEY", "sk-bob-1")],
    )
    .await
}

async fn send(
    gw: &TestGateway,
    key: &str,
    method: http::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = gw
        .http
        .request(method, format!("{}{path}", gw.base))
        .bearer_auth(key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn create(gw: &TestGateway, key: &str, body: Value) -> Value {
    let r = send(gw, key, http::Method::POST, "/v1/responses", Some(body)).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn get(gw: &TestGateway, key: &str, id: &str) -> reqwest::Response {
    send(
        gw,
        key,
        http::Method::GET,
        &format!("/v1/responses/{id}"),
        None,
    )
    .await
}

/// The response object of a streamed answer's `response.completed`.
fn completed(text: &str) -> Value {
    let events = SseDecoder::new().decode(text.as_bytes());
    let last = events.last().unwrap();
    assert_eq!(last.event, "response.completed");
    serde_json::from_str::<Value>(&last.data).unwrap()["response"].clone()
}

#[tokio::test]
async fn a_conversation_is_stored_continued_read_and_deleted_on_a_translated_route() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let gw = start(&fake, "").await;
    let first = create(
        &gw,
        "sk-ada-1",
        json!({"model": "r", "instructions": "Be brief.", "input": "My name is Ada."}),
    )
    .await;
    assert_eq!(first["store"], true, "{first}");
    let id = first["id"].as_str().unwrap();
    // Read back: the same object.
    let r = get(&gw, "sk-ada-1", id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    // Continued: the target gets the whole conversation, without the
    // first turn's instructions (the API does not carry them over).
    let second = create(
        &gw,
        "sk-ada-1",
        json!({"model": "r", "input": [{"role": "user", "content": "What is my name?"}],
               "previous_response_id": id}),
    )
    .await;
    assert_eq!(second["previous_response_id"], id);
    assert_eq!(
        second["output"][0]["content"][0]["text"],
        "Echo: What is my name?"
    );
    let sent = &fake.requests()[1].body["messages"];
    assert_eq!(
        sent,
        &json!([
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Echo: My name is Ada."},
            {"role": "user", "content": "What is my name?"},
        ]),
        "{sent}"
    );
    // A stream continues it too, and is kept before its last event.
    let r = send(
        &gw,
        "sk-ada-1",
        http::Method::POST,
        "/v1/responses",
        Some(json!({"model": "r", "input": "And again?", "stream": true,
                    "previous_response_id": second["id"]})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let third = completed(&r.text().await.unwrap());
    assert_eq!(third["previous_response_id"], second["id"]);
    assert_eq!(
        fake.requests()[2].body["messages"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let third_id = third["id"].as_str().unwrap();
    let stored: Value = get(&gw, "sk-ada-1", third_id).await.json().await.unwrap();
    assert_eq!(stored["output"], third["output"]);
    // Its input items: the conversation that produced it, newest first.
    let items_of = async |key: &str, query: &str| {
        let path = format!("/v1/responses/{third_id}/input_items{query}");
        send(&gw, key, http::Method::GET, &path, None).await
    };
    let r = items_of("sk-ada-1", "").await;
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    let texts: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "And again?",
            "Echo: What is my name?",
            "What is my name?",
            "Echo: My name is Ada.",
            "My name is Ada."
        ]
    );
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], list["data"][0]["id"]);
    let r = items_of("sk-ada-1", "?order=asc&limit=2").await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["data"][0]["content"][0]["text"], "My name is Ada.");
    assert_eq!(page["has_more"], true);
    let after = page["last_id"].as_str().unwrap().to_string();
    let r = items_of("sk-ada-1", &format!("?order=asc&limit=2&after={after}")).await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["data"][0]["content"][0]["text"], "What is my name?");
    let r = items_of("sk-ada-1", "?order=sideways").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_of(r).await["param"], "order");
    assert_eq!(items_of("sk-bob-1", "").await.status(), 404);
    // Scoped to the key: another key sees nothing and cannot continue it.
    let r = get(&gw, "sk-bob-1", id).await;
    assert_eq!(r.status(), 404);
    assert!(error_of(r).await["message"].as_str().unwrap().contains(id));
    let r = send(
        &gw,
        "sk-bob-1",
        http::Method::POST,
        "/v1/responses",
        Some(json!({"model": "r", "input": "hi", "previous_response_id": id})),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e = error_of(r).await;
    assert_eq!(e["code"], "previous_response_not_found");
    assert_eq!(e["param"], "previous_response_id");
    assert_eq!(fake.calls(), 3, "a refused continuation is not sent");
    // Deleted: gone for reads and continuations.
    let r = send(
        &gw,
        "sk-ada-1",
        http::Method::DELETE,
        &format!("/v1/responses/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id": id, "object": "response", "deleted": true})
    );
    assert_eq!(get(&gw, "sk-ada-1", id).await.status(), 404);
    let r = send(
        &gw,
        "sk-ada-1",
        http::Method::DELETE,
        &format!("/v1/responses/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    // The later turns hold their own copy of the conversation.
    assert_eq!(get(&gw, "sk-ada-1", third_id).await.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn store_false_keeps_nothing_and_the_mock_keeps_by_default() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let gw = start(&fake, "").await;
    let off = create(
        &gw,
        "sk-ada-1",
        json!({"model": "r", "input": "x", "store": false}),
    )
    .await;
    assert_eq!(off["store"], false);
    assert_eq!(
        get(&gw, "sk-ada-1", off["id"].as_str().unwrap())
            .await
            .status(),
        404
    );
    let mocked = create(
        &gw,
        "sk-ada-1",
        json!({"model": "mocked", "input": "hello"}),
    )
    .await;
    let id = mocked["id"].as_str().unwrap();
    assert_eq!(get(&gw, "sk-ada-1", id).await.status(), 200);
    let next = create(
        &gw,
        "sk-ada-1",
        json!({"model": "mocked", "input": "more", "previous_response_id": id}),
    )
    .await;
    assert_eq!(next["status"], "completed");
    gw.stop().await;
}

#[tokio::test]
async fn a_conversation_over_max_entry_bytes_is_served_but_not_stored() {
    let fake = FakeAzure::start(&["prod-4o"]).await;
    let gw = start(
        &fake,
        "state:\n  responses: {ttl: 1h, max_bytes: 100000, max_entry_bytes: 2000}\n",
    )
    .await;
    let small = create(&gw, "sk-ada-1", json!({"model": "r", "input": "short"})).await;
    assert_eq!(
        get(&gw, "sk-ada-1", small["id"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let big = create(
        &gw,
        "sk-ada-1",
        json!({"model": "r", "input": "long ".repeat(600)}),
    )
    .await;
    assert_eq!(big["status"], "completed");
    assert_eq!(
        get(&gw, "sk-ada-1", big["id"].as_str().unwrap())
            .await
            .status(),
        404
    );
    gw.stop().await;
}
