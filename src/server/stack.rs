//! The request pipeline, assembled in one place, outermost first.
//!
//! Place in the pipeline: called by `accept` for every request on every
//! connection. Each step below is one line of [`handle`], with its reason.
//! Errors from any step become HTTP here and only here (through
//! [`super::http::error_response`]). Must not contain endpoint logic.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

use super::context::{Admission, ConnActivity, RequestCtx, Tracked};
use super::http::error_response;
use super::router::{self, Ctx};
use super::state::AppState;
use crate::api::{ErrorKind, GatewayError};

/// Paths answered outside the concurrency limit, so that orchestrators and
/// dashboards keep seeing the gateway while it is saturated.
fn bypasses_limit(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

pub(super) async fn handle(
    state: Arc<AppState>,
    conn: Arc<ConnActivity>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Tracked> {
    // Request id: the client's when sane, else a fresh one; on every answer.
    let request_id = router::request_id(&req);
    let path = req.uri().path().trim_end_matches('/').to_string();
    let mut rc = RequestCtx::new(request_id, req.method().clone(), path, &conn);
    // Span: every log line of this request carries its id.
    let span = tracing::info_span!("request", id = %rc.request_id);
    // Runtime snapshot: the policy this request runs on to its end.
    let rt = state.runtime.load_full();
    // Load shed: a permit of `server.max_concurrent_requests`, or 503 at
    // once. Health and metrics bypass it (and are not counted as in
    // flight, so a scrape does not see itself). The permit is shared with work
    // done on the request's behalf (single-flight leaders, stream bodies).
    let result = if bypasses_limit(&rc.path) {
        Ok(())
    } else {
        match state.request_limit.try_acquire() {
            Some(permit) => {
                rc.admission = Some(Admission::new(permit, &state.metrics));
                Ok(())
            }
            None => Err(overloaded()),
        }
    };
    // Dispatch: client limit, then the endpoint.
    let result = match result {
        Ok(()) => {
            let ctx = Ctx {
                client_key: router::client_key(&req, peer),
                state: Arc::clone(&state),
                rt,
            };
            router::dispatch(&ctx, &mut rc, req).instrument(span).await
        }
        Err(e) => Err(e),
    };
    // Errors become HTTP: the one place.
    let mut response = result.unwrap_or_else(|e| error_response(&e));
    if let Ok(v) = HeaderValue::from_str(&rc.request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    // Accounting: the access log and request metrics are written when the
    // body has been sent (or abandoned), so streams are measured whole.
    let status = response.status().as_u16();
    let metrics = Arc::clone(&state.metrics);
    response.map(|body| Tracked::new(body, rc, status, metrics))
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
