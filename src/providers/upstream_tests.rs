//! An upstream's send, as a provider awaits it.

use std::time::Duration;

use super::Upstream;
use crate::config::Timeouts;

/// Every timeout 5 s.
fn timeouts() -> Timeouts {
    let t = Duration::from_secs(5);
    Timeouts {
        connect: t,
        first_byte: t,
        idle: t,
        body: t,
        total: t,
    }
}

fn upstream() -> Upstream {
    Upstream::new(&timeouts(), 1 << 20, []).unwrap()
}

/// What a provider's call does first.
async fn provider_call(upstream: &Upstream) -> bool {
    let request = upstream
        .client()
        .post("http://127.0.0.1:9/v1/chat/completions");
    upstream.send(request).await.is_ok()
}

/// A provider's future holds the send boxed, and the send is built in its
/// box: inline, the send (timeouts, the client, the HTTP/1 pool) made
/// every provider's future about 2 KB larger, and every provider's future
/// is boxed, so copied whole, on every request.
#[tokio::test]
async fn a_provider_future_holds_the_send_boxed() {
    let upstream = upstream();
    let call = provider_call(&upstream); // not polled: only its size is wanted
    let size = std::mem::size_of_val(&call);
    // 2,512 bytes with the send inline, as `cargo test` builds it.
    assert!(size <= 256, "the provider's future is {size} bytes");
}

#[test]
fn media_types_are_compared_without_case_or_parameters() {
    use super::{content_type_is, is_json_type};
    use crate::providers::client::Response;
    let typed = |t: &str| {
        let mut r = Response::from_chunks(Vec::new());
        r.headers_mut()
            .insert(http::header::CONTENT_TYPE, t.parse().unwrap());
        r
    };
    for (t, json) in [
        ("application/json", true),
        ("application/json; charset=utf-8", true),
        ("Application/JSON", true),
        (" APPLICATION/PROBLEM+JSON ;q=1", true),
        ("text/html", false),
        ("Text/HTML; charset=utf-8", false),
    ] {
        assert_eq!(content_type_is(&typed(t), is_json_type, false), json, "{t}");
    }
    let untyped = Response::from_chunks(Vec::new());
    assert!(content_type_is(&untyped, is_json_type, true));
    assert!(!content_type_is(&untyped, is_json_type, false));
}

/// A whole answer read as one chunk is that chunk (not a copy); one in
/// pieces, empty ones among them, is joined in order.
#[tokio::test]
async fn a_body_of_one_chunk_is_kept_and_one_of_many_joined() {
    use crate::providers::body::Limits;
    use crate::providers::client::Response;
    use crate::providers::scrub::Scrubber;
    use bytes::Bytes;
    let t = Duration::from_secs(5);
    let limits = Limits::new(
        &timeouts(),
        tokio::time::Instant::now(),
        1 << 20,
        std::sync::Arc::new(Scrubber::default()),
    );
    let read = |chunks: Vec<Bytes>| {
        let stream = limits.body(Response::from_chunks(chunks));
        limits.read_all(stream, None, t)
    };
    let one = Bytes::from_static(b"{\"choices\":[]}");
    let got = read(vec![one.clone()]).await.unwrap();
    assert_eq!(got.as_ptr(), one.as_ptr(), "the chunk itself");
    for chunks in [
        vec!["{\"a\"", ":1", "}"],
        vec!["", "{\"a\":1}"],
        vec!["{\"a\":1}", ""],
        vec!["", "", "{\"a\"", "", ":1}"],
    ] {
        let chunks = chunks
            .into_iter()
            .map(|c: &'static str| Bytes::from_static(c.as_bytes()))
            .collect();
        assert_eq!(read(chunks).await.unwrap(), "{\"a\":1}");
    }
    assert_eq!(read(Vec::new()).await.unwrap(), "");
}

/// A chunk waits at most until the earliest of its deadlines, named; one
/// that is there is taken even when a deadline has passed.
#[tokio::test(start_paused = true)]
async fn a_chunk_waits_until_its_earliest_deadline() {
    use crate::providers::body::Limits;
    use crate::providers::scrub::Scrubber;
    use crate::providers::{UpstreamError, body::ByteStream};
    use futures_util::StreamExt;
    use tokio::time::Instant;
    let mut t = timeouts();
    t.idle = Duration::from_secs(2);
    let started = Instant::now();
    let limits = Limits::new(
        &t,
        started,
        1 << 20,
        std::sync::Arc::new(Scrubber::default()),
    );
    let mut silent: ByteStream = futures_util::stream::pending().boxed();
    // idle (2 s) before body (3 s) and total (5 s).
    let body = Some(started + Duration::from_secs(3));
    let e = limits.next(&mut silent, body).await.unwrap().unwrap_err();
    assert!(matches!(e, UpstreamError::Timeout("idle")), "{e}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // From 2 s: idle would end at 4 s, the body's deadline at 3 s.
    let e = limits.next(&mut silent, body).await.unwrap().unwrap_err();
    assert!(matches!(e, UpstreamError::Timeout("body")), "{e}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    // Past every deadline, a chunk that is there is still taken.
    tokio::time::advance(Duration::from_secs(10)).await;
    let mut ready: ByteStream =
        futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"x"))]).boxed();
    assert_eq!(limits.next(&mut ready, body).await.unwrap().unwrap(), "x");
    assert!(limits.next(&mut ready, body).await.is_none());
    let e = limits.next(&mut silent, None).await.unwrap().unwrap_err();
    assert!(matches!(e, UpstreamError::Timeout("total")), "{e}");
}
