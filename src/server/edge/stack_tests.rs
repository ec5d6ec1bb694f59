//! Unit tests of the edge stack around services that misbehave on purpose
//! (a real panic, in `call` and in the future): each gets an OpenAI 500 with
//! the request id, is accounted once, and the stack keeps serving.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::decompression::DecompressionBody;

use super::stack::edge;
use crate::server::http::{Body, json_response};
use crate::server::state::mock_state;

type In = Request<DecompressionBody<Full<Bytes>>>;

/// Panics in `call` on `/sync`, in the future on `/async`, else answers.
fn handler(req: In) -> impl Future<Output = Result<Response<Body>, Infallible>> {
    if req.uri().path() == "/sync" {
        panic!("boom in call");
    }
    async move {
        if req.uri().path() == "/async" {
            tokio::task::yield_now().await;
            panic!("boom in {}", "the future");
        }
        Ok(json_response(StatusCode::OK, r#"{"ok":true}"#))
    }
}

fn request(path: &str, id: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(path);
    if let Some(id) = id {
        b = b.header("x-request-id", id);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

async fn json_of<B: hyper::body::Body>(r: Response<B>) -> Value
where
    B::Error: std::fmt::Debug,
{
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_panic_becomes_an_openai_500_with_the_request_id_and_the_stack_serves_on() {
    let (_dir, state) = mock_state().await;
    let svc = edge(&state, tower::service_fn(handler));
    for path in ["/sync", "/async"] {
        let r = svc
            .clone()
            .oneshot(request(path, Some("panic-1")))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(r.headers()["x-request-id"], "panic-1");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = json_of(r).await;
        assert_eq!(
            body,
            json!({"error": {
                "message": "The gateway failed while handling this request.",
                "type": "server_error", "param": null, "code": "internal_error"}}),
            "{path}"
        );
        let ok = svc.clone().oneshot(request("/fine", None)).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "serves on after {path}");
        assert_eq!(json_of(ok).await, json!({"ok": true}));
    }
    // Each panic was accounted once, with its final status.
    let m = &state.metrics.requests;
    assert_eq!(m.with_label_values(&["other", "_unknown", "500"]).get(), 2);
    assert_eq!(m.with_label_values(&["other", "_unknown", "200"]).get(), 2);
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
    let (_dir, state) = mock_state().await;
    let svc = edge(&state, tower::service_fn(handler));
    let id_of = async |id: Option<&str>| {
        let r = svc.clone().oneshot(request("/x", id)).await.unwrap();
        r.headers()["x-request-id"].to_str().unwrap().to_string()
    };
    assert_eq!(id_of(Some("client-id-42")).await, "client-id-42");
    for bad in [None, Some("has space"), Some(&"x".repeat(129) as &str)] {
        let id = id_of(bad).await;
        assert_eq!(id.len(), 32, "{bad:?} -> {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(id_of(None).await, id_of(None).await);
}
