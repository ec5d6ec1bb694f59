//! The edge pipeline, assembled in one place, outermost first.
//!
//! Place in the pipeline: between `accept` (which serves every connection
//! with a clone of the service built here) and `router`. [`build`] makes the
//! tower stack once per gateway: no layer holds per-connection state (the
//! peer address comes in a request extension), and the steps that depend on
//! the policy (CORS, the body limit, the concurrency limit) read the live
//! runtime per request, so a reload applies to requests on connections that
//! are already open, not only to new ones. Each layer has one comment in
//! [`edge`]; the innermost steps (health bypass, load shed, concurrency
//! limit, dispatch) are [`dispatch`]. The request id, trace span and
//! accounting sit outside catch-panic, so that a panic's 500 still gets the
//! id, the span and an access log line; they are panic-free: a few lines
//! each of `request_id`, `span` and `account`. Errors from any step
//! become HTTP through `server::http` only. Must not contain endpoint
//! logic, and no layer may buffer a response body (streams flush event by
//! event).

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as HttpBody, Incoming};
use tower::layer::layer_fn;
use tower::{Service, ServiceBuilder};
use tower_http::BoxError;

use super::account::account;
use super::catch_panic::catch_panic;
use super::compress;
use super::context::CtxSlot;
use super::cors;
use super::decompress::decompress;
use super::permit::RequestPermit;
use super::request_id::request_id;
use super::span::in_span;
use crate::api::{ErrorKind, GatewayError};
use crate::boxed::in_place;
use crate::server::http::{Body, ErrorShape, ReqBody, error_response, shaped_error_response};
use crate::server::router;
use crate::server::state::AppState;

/// The gateway's edge stack for `accept` to serve.
pub(crate) fn build(
    state: &Arc<AppState>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<impl HttpBody<Data = Bytes, Error = BoxError> + Send + 'static>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    let st = Arc::clone(state);
    edge(
        state,
        // Boxed in place: the layers above wrap this future and move it
        // (into hyper's per-connection slot, cold with many connections
        // open); boxed, each move is of a pointer.
        tower::service_fn(move |req: Request<ReqBody>| {
            let st = Arc::clone(&st);
            in_place(move || dispatch(st, req))
        }),
    )
}

/// The edge layers around `inner` (the router in [`build`], anything in
/// tests), outermost first.
pub(crate) fn edge<S, B>(
    state: &Arc<AppState>,
    inner: S,
) -> impl Service<
    Request<B>,
    Response = Response<impl HttpBody<Data = Bytes, Error = BoxError> + Send + 'static>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static
where
    S: Service<Request<ReqBody>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError> + Send + Sync,
{
    let st = Arc::clone(state);
    let live = Arc::clone(state);
    let current_cors = move || live.runtime.load().cors.clone();
    let live = Arc::clone(state);
    let current_compression = move || live.runtime.load().compression.clone();
    ServiceBuilder::new()
        // Request id: a sane client id is kept, else a fresh one; copied to every answer.
        .layer(layer_fn(request_id))
        // Trace span: one per request (`span`), entered for the handler and the body, so logs carry the id.
        .layer(layer_fn(in_span))
        // Accounting: request metrics once, at the end of the body, final status; its access line once the connection has sent the answer.
        .layer(layer_fn(move |inner| account(inner, Arc::clone(&st))))
        // Catch-panic: a panic below becomes an OpenAI 500; connection and gateway serve on.
        .layer(layer_fn(|inner| catch_panic(panic_response, inner)))
        // CORS: from the live policy; preflights answered here, outside the concurrency limit.
        .layer(layer_fn(move |inner| {
            cors::live(current_cors.clone(), mark_preflight, inner)
        }))
        // Compression (with `server.compression`): gzip, br or zstd as accepted, above a size floor, never event streams.
        .layer(layer_fn(move |inner| {
            compress::live(current_compression.clone(), inner)
        }))
        // Request decompression: gzip, br, zstd, deflate bodies decoded; other encodings 415.
        .layer(layer_fn(decompress))
        // Health bypass, load shed, concurrency limit, dispatch: see `dispatch`.
        .service(inner)
}

/// The innermost steps, in order. `dispatch` is a plain function so that
/// the health bypass and the limit stay next to each other and to the
/// router they guard.
async fn dispatch(
    state: Arc<AppState>,
    req: Request<ReqBody>,
) -> Result<Response<Body>, Infallible> {
    let Some(slot) = req.extensions().get::<CtxSlot>().cloned() else {
        return Ok(error_response(&GatewayError::internal(
            "request context missing",
        )));
    };
    // The context, lent by the accounting step and given back on drop.
    let mut lease = slot.lease();
    let Some(rc) = lease.rc.as_mut() else {
        return Ok(error_response(&GatewayError::internal(
            "request context lent twice",
        )));
    };
    // Health bypass: health, readiness, metrics and the live page (where the
    // policy puts it) are answered outside the limit (and not counted as in
    // flight, so a scrape does not see itself), so that orchestrators and
    // dashboards see a saturated gateway.
    // Load shed and concurrency limit: otherwise a permit of
    // `server.max_concurrent_requests`, or 503 at once. The permit is
    // shared with work done on the request's behalf (single-flight leaders,
    // stream bodies) through `rc.permit`.
    if !bypasses_limit(&rc.path) && rc.rt.policy.server.dashboard.part(&rc.path).is_none() {
        match state.request_limit.try_acquire() {
            Some(permit) => rc.permit = Some(RequestPermit::new(permit, &state.busy_poll)),
            None => {
                let e = overloaded();
                rc.failed(&e);
                return Ok(error_response(&e));
            }
        }
    }
    if let Some(hook) = &state.dispatch_hook {
        hook(&rc.path, req.headers());
    }
    // Dispatch: the router's one match, then the endpoint (this future is
    // boxed in place by `build`, and each endpoint's by the router).
    let result = router::dispatch(rc, req).await;
    // Errors become HTTP: the one place, in the endpoint's shape.
    let shape = ErrorShape::for_path(&rc.path);
    Ok(result.unwrap_or_else(|e| {
        rc.failed(&e);
        shaped_error_response(&e, shape)
    }))
}

/// Paths answered outside the concurrency limit.
fn bypasses_limit(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Marks a CORS preflight in the request's context (for its access log).
fn mark_preflight<B>(req: &Request<B>) {
    if let Some(slot) = req.extensions().get::<CtxSlot>() {
        slot.update(|rc| rc.endpoint = "preflight");
    }
}

/// A panic's answer, logged (inside the request's span) with its message.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "request handler panicked; answered 500");
    error_response(&GatewayError::internal(
        "The gateway failed while handling this request.",
    ))
}

/// Load shedding's refusal, in the OpenAI error format.
fn overloaded() -> GatewayError {
    GatewayError::new(
        ErrorKind::Overloaded,
        "The gateway is at its concurrency limit; retry shortly.",
    )
    .with_code("overloaded")
    .with_retry_after(std::time::Duration::from_secs(1))
}
