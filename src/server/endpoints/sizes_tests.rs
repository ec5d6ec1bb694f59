//! The size of the futures on a request's path, held to a bound: every
//! future is copied whole where it is boxed or moved, on memory that is
//! cold when hundreds of requests are in flight, so a rare branch inlined
//! into the common one (a cached flow, a connection's opening, the Redis
//! store) costs every request. The bounds sit between the sizes before
//! the rare branches were boxed and after, with room for the compiler.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use crate::server::edge::context::RequestCtx;
use crate::server::http::ReqBody;
use crate::server::state::mock_state;

fn request() -> Request<ReqBody> {
    let body = Full::new(Bytes::from_static(b"{}")).map_err(|never| match never {});
    Request::post("/v1/chat/completions")
        .body(body.boxed())
        .unwrap()
}

/// Not polled: only its size is wanted.
fn size<F: Future>(f: &F) -> usize {
    std::mem::size_of_val(f)
}

#[tokio::test]
async fn the_request_carries_its_body_boxed() {
    // 584 bytes with the decoder inline; the head alone is 224.
    let size = std::mem::size_of::<Request<ReqBody>>();
    assert!(size <= 256, "Request<ReqBody> is {size} bytes");
}

#[tokio::test]
async fn endpoint_futures_leave_their_rare_branches_boxed() {
    let (_dir, state) = mock_state().await;
    let mut rc = RequestCtx::for_request(&request(), &state);
    // As `cargo test` builds them: chat 7,128 bytes with its cached flow
    // inline, 3,104 with the store's admission inline, 2,496 with both
    // boxed; completions 2,808 / 2,232 and embeddings 2,872 / 1,880 without
    // and with the admission boxed (embeddings: 2,496 with its one-call
    // pass-through inline, 1,744 with it boxed too).
    let chat = size(&super::chat::handle(&mut rc, request()));
    let completions = size(&super::completions::handle(&mut rc, request()));
    let embeddings = size(&super::embeddings::handle(&mut rc, request()));
    for (name, size, bound) in [
        ("chat", chat, 3000),
        ("completions", completions, 2600),
        ("embeddings", embeddings, 2400),
    ] {
        assert!(
            size <= bound,
            "{name}'s future is {size} bytes (bound {bound})"
        );
    }
}
