//! Unit tests of the edge stack around services that misbehave on purpose
//! (a real panic, in `call` and in the future): each gets an OpenAI 500 with
//! the request id, is accounted once, and the stack keeps serving.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::stack::edge;
use crate::server::http::{Body, ReqBody, json_response};
use crate::server::state::mock_state;

type In = Request<ReqBody>;

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

/// The edge's future, which hyper keeps in each connection's slot (memory
/// that is cold with hundreds of connections open), adds little to the
/// inner one and holds no step's copy of the request: each step is a plain
/// service with a future of its own (the router's work is boxed below
/// them, in `build`).
#[tokio::test]
async fn the_edge_steps_add_little_to_the_inner_future() {
    use tower::Service;
    let (_dir, state) = mock_state().await;
    let inner = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&inner);
    let mut svc = edge(
        &state,
        tower::service_fn(move |req: In| {
            let future = handler(req);
            seen.store(std::mem::size_of_val(&future), Ordering::Relaxed);
            future
        }),
    );
    let call = svc.call(request("/", None));
    let edge = std::mem::size_of_val(&call);
    // Polled once: the steps call the inner service on their way in.
    let mut call = std::pin::pin!(call);
    let _ = futures_util::poll!(call.as_mut());
    let inner = inner.load(Ordering::Relaxed);
    assert!(inner > 0, "the inner service was not called");
    let added = edge - inner;
    // As `cargo test` builds it: 2,648 bytes with the steps as `async`
    // blocks, each holding the request twice; 120 as plain futures.
    assert!(added <= 512, "the edge steps add {added} bytes");
}
