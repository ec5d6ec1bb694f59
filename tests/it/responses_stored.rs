//! `GET` / `DELETE /v1/responses/{id}?model=ROUTE` and `GET
//! /v1/responses/{id}/input_items?model=ROUTE` through the real gateway:
//! passed to the route's openai-kind target (a fake on 127.0.0.1:0), the
//! upstream's 404 passed back, and 404s for an id nobody keeps (the
//! gateway's own stored responses are in `responses_state.rs`).

use crate::common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn stored_responses_are_fetched_and_deleted_on_openai_kind_targets_only() {
    let up = FakeUpstream::start(|s, _| async move {
        match s.path.as_str() {
            "/v1/responses/resp_abc" => {
                Reply::Json(200, json!({"id": "resp_abc", "object": "response"}))
            }
            "/v1/responses/resp_abc/input_items" => Reply::Json(
                200,
                json!({"object": "list", "data": [{"id": "msg_1", "type": "message"}],
                       "first_id": "msg_1", "last_id": "msg_1", "has_more": false}),
            ),
            _ => Reply::Json(
                404,
                json!({"error": {"message": "No response found", "type": "invalid_request_error",
                                                    "param": null, "code": null}}),
            ),
        }
    })
    .await;
    let yaml = format!(
        "{}  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{{provider: m}}, {{provider: p0}}]\n  only-mock:\n    targets: [{{provider: m}}]\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let resp = gw.get("/v1/responses/resp_abc?model=r").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "p0");
    assert_eq!(resp.json::<Value>().await.unwrap()["id"], "resp_abc");
    let resp = gw
        .http
        .delete(format!("{}/v1/responses/resp_abc?model=r", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.path == "/v1/responses/resp_abc"));
    let resp = gw.get("/v1/responses/resp_gone?model=r").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_of(resp).await["message"], "No response found");
    // A translated route stores in the gateway: not there, not found.
    let resp = gw.get("/v1/responses/resp_abc?model=only-mock").await;
    assert_eq!(resp.status(), 404);
    let err = error_of(resp).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("'resp_abc' not found"),
        "{err}"
    );
    // Without a route, only the gateway's own are looked at.
    let resp = gw.get("/v1/responses/resp_abc").await;
    assert_eq!(resp.status(), 404);
    assert!(
        error_of(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("?model=ROUTE")
    );
    assert_eq!(
        gw.get("/v1/responses/a%2F..%2Fb?model=r").await.status(),
        404
    );
    assert_eq!(up.requests().len(), 3, "nothing else reached the upstream");
    // Its input items: the API's parameters go along, checked; the route
    // selector and anything else do not.
    let resp = gw
        .get("/v1/responses/resp_abc/input_items?model=r&limit=5&order=asc&after=msg_0&include[]=message.input_image.image_url&x=y")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["data"][0]["id"],
        "msg_1"
    );
    let seen = up.requests();
    assert_eq!(seen[3].path, "/v1/responses/resp_abc/input_items");
    assert_eq!(
        seen[3].query,
        "after=msg_0&limit=5&order=asc&include[]=message.input_image.image_url"
    );
    let resp = gw
        .get("/v1/responses/resp_abc/input_items?model=r&limit=500")
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_of(resp).await["param"], "limit");
    let resp = gw
        .http
        .delete(format!(
            "{}/v1/responses/resp_abc/input_items?model=r",
            gw.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    assert_eq!(
        gw.get("/v1/responses/a%2F..%2Fb/input_items?model=r")
            .await
            .status(),
        404
    );
    assert_eq!(up.requests().len(), 4, "nothing else reached the upstream");
    gw.stop().await;
}
