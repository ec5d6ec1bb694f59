//! A served stream as the client's SSE response.
//!
//! Place in the pipeline: the last step of every streamed answer that is
//! not replayed from the cache (chat, completions, Responses, Messages):
//! [`sse_reply`] pipes the upstream's whole events through, reads their
//! usage in the endpoint's dialect (and takes it out when the gateway asked
//! for usage the client did not), and holds the request permit until the
//! body ends. A failure after the response started cannot change its
//! status: it is logged in the request's span, counted as an interruption,
//! counted against the provider's breaker, and written as one error event
//! in the endpoint's shape; the stream then ends. Must not alter events
//! beyond stripping usage.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::api::usage::Dialect;
use crate::api::{ErrorKind, GatewayError};
use crate::metrics::Metrics;
use crate::providers::{ChatReply, UpstreamError};
use crate::routing::{ProviderHandle, Served};
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, ErrorShape, served_by, stream_error_event};

/// `served` piped to the client as SSE (see the module doc): usage read in
/// `dialect` (and taken out when `strip_usage`); a failure mid-way ends it
/// with one error event in `shape`.
pub(crate) fn sse_reply(
    rc: &mut RequestCtx,
    served: Served<ChatReply>,
    shape: ErrorShape,
    dialect: Dialect,
    strip_usage: bool,
) -> Response<Body> {
    rc.served_by(&served.provider, served.attempts);
    let mut tap = rc.tap_stream(&served.model, dialect, strip_usage);
    let events = match served.value {
        ChatReply::Stream(s) => s,
        ChatReply::Full(body, _) => futures_util::stream::once(async move { Ok(body) }).boxed(),
    };
    // Everything the stream needs once the handler has returned.
    let metrics = Arc::clone(&rc.state.metrics);
    let permit = rc.permit.clone();
    let interrupted = Arc::clone(&rc.interrupted);
    let handle = rc.rt.table.providers.get(&*served.provider).cloned();
    let route = rc.route_label.clone();
    let provider = Arc::clone(&served.provider);
    // Provider streams end after their first error.
    let frames = events.filter_map(move |chunk| {
        let _held = &permit;
        let bytes = match chunk {
            Ok(b) => tap.pass(b),
            Err(e) => {
                // The response has started: report in-band, then end. The
                // edge polls this body inside the request's span, so the
                // line carries the request id.
                interrupted.store(true, Ordering::Relaxed);
                broke(handle.as_deref(), &metrics, &route, &provider, &e, shape)
            }
        };
        // A run that held only a stripped usage chunk is not sent.
        let frame = (!bytes.is_empty()).then(|| Ok::<_, Infallible>(Frame::data(bytes)));
        std::future::ready(frame)
    });
    sse_response(
        StreamBody::new(frames).boxed_unsync(),
        &served.provider,
        served.attempts,
    )
}

/// A stream that failed after its response started: logged (at most once a
/// second per provider, with the count held back), counted as an
/// interruption and charged to the provider's breaker; the in-band error
/// event in `shape` to end it with.
pub(crate) fn broke(
    handle: Option<&ProviderHandle>,
    metrics: &Metrics,
    route: &str,
    provider: &str,
    e: &UpstreamError,
    shape: ErrorShape,
) -> Bytes {
    let suppressed = handle.map_or(Some(0), |h| h.stream_breaks.check());
    if let Some(suppressed) = suppressed {
        tracing::warn!(route, provider, error = %e, suppressed, "upstream stream failed mid-way");
    }
    metrics
        .stream_interruptions
        .with_label_values(&[route, provider])
        .inc();
    if let Some(h) = handle {
        h.breaker.record_failure();
    }
    let err = GatewayError::new(
        ErrorKind::BadGateway,
        format!("Upstream stream interrupted: {e}"),
    )
    .with_code("stream_interrupted");
    stream_error_event(&err, shape)
}

/// An SSE response around `body`, naming who served it.
pub(crate) fn sse_response(body: Body, provider: &str, attempts: u32) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    served_by(h, provider, attempts);
    r
}
