//! The accounting step: the request context is made here and read once,
//! when the response body has been sent or abandoned.
//!
//! Place in the pipeline: an edge step just inside the request id and the
//! trace span, outside catch-panic (so a panic's 500 is accounted too).
//! [`account`] makes the [`RequestCtx`] and the connection's in-flight
//! mark, lends the context to the inner steps through a `CtxSlot`, and
//! moves it into [`Tracked`], the response body wrapper, with the final
//! status and the gateway's own error, if it answered one (its code and
//! message, `http::OwnError`). When the body ends (or the client goes
//! away) it writes the request metrics, the token and cost metrics
//! (`usage::settle`) and, when tracing is on, the request span's
//! attributes, hands the usage to the admission settlement, once, so
//! durations and stream usage cover the whole body, and leaves the access
//! log line for the connection to write once the answer is sent
//! (`access_line`). Must not change the response.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tower::Service;

use super::access_line::{self, AccessLine};
use super::conn::{ConnGuard, ConnInfo};
use super::context::{CtxSlot, MAX_LOGGED_MESSAGE, RequestCtx, log_safe};
use crate::metrics::series;
use crate::server::access::usage;
use crate::server::http::OwnError;
use crate::server::state::AppState;
use crate::telemetry;

/// Makes the request's context and the connection's in-flight mark, lends
/// the context to `inner`, and wraps the final response's body in
/// [`Tracked`] with the status the client gets.
pub(super) fn account<S>(inner: S, state: Arc<AppState>) -> Account<S> {
    Account { inner, state }
}

/// The step (see [`account`]): a plain service and future, as
/// `request_id`'s (an `async` block would hold the request twice).
#[derive(Clone)]
pub(super) struct Account<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S, B, RB> Service<Request<B>> for Account<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: HttpBody,
{
    type Response = Response<Tracked<RB>>;
    type Error = S::Error;
    type Future = Accounted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let conn = req
            .extensions()
            .get::<ConnInfo>()
            .map(|c| ConnGuard::enter(&c.activity));
        let slot = CtxSlot::new(RequestCtx::for_request(&req, &self.state));
        req.extensions_mut().insert(slot.clone());
        Accounted {
            inner: self.inner.call(req),
            slot,
            conn,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, its body wrapped in [`Tracked`] with the context.
    pub(super) struct Accounted<F> {
        #[pin]
        inner: F,
        slot: CtxSlot,
        conn: Option<ConnGuard>,
    }
}

impl<F, RB, E> std::future::Future for Accounted<F>
where
    F: std::future::Future<Output = Result<Response<RB>, E>>,
    RB: HttpBody,
{
    type Output = Result<Response<Tracked<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let status = response.status().as_u16();
        let error = response
            .extensions()
            .get::<OwnError>()
            .map(|e| (e.code, log_safe(&e.message, MAX_LOGGED_MESSAGE)));
        let conn = this.conn.take();
        let record = this.slot.take().map(|ctx| Record {
            ctx,
            status,
            error,
            conn,
        });
        Poll::Ready(Ok(response.map(|inner| Tracked { inner, record })))
    }
}

/// The response body, carrying the request's context until it has been
/// sent or abandoned.
pub(super) struct Tracked<B: HttpBody> {
    inner: B,
    record: Option<Record>,
}

struct Record {
    ctx: Box<RequestCtx>,
    status: u16,
    /// The gateway's own error, code and message (sanitised, capped).
    error: Option<(&'static str, Box<str>)>,
    /// The request in flight on its connection, until the body ends.
    conn: Option<ConnGuard>,
}

impl<B: HttpBody> Tracked<B> {
    fn finish(&mut self, complete: bool) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        let c = &r.ctx;
        let elapsed = c.started.elapsed();
        let interrupted = c.interrupted.load(Ordering::Relaxed);
        let outcome = match (interrupted, complete) {
            (true, _) => "stream_interrupted",
            (false, true) => "complete",
            (false, false) => "client_gone",
        };
        if telemetry::tracing_on() {
            c.record_trace(r.status, interrupted);
        }
        let metrics = &c.state.metrics;
        // The status's own text (a static table), not a new string.
        let code = http::StatusCode::from_u16(r.status).ok();
        let status = match (interrupted, &code) {
            (true, _) => "stream_error",
            (false, Some(code)) => code.as_str(),
            (false, None) => "other",
        };
        // The route's own kept series, when the request is counted under it.
        let series = c
            .route
            .as_ref()
            .filter(|r| r.label == c.route_label)
            .map(|r| &*r.series);
        let secs = elapsed.as_secs_f64();
        match series {
            Some(s) => s.answered(metrics, c.endpoint, &c.route_label, status, secs),
            None => series::answered(metrics, c.endpoint, &c.route_label, status, secs),
        }
        let (spent, cost) = usage::settle(metrics, series, &c.route_label, &c.key_alias, &c.spend);
        let by_provider = c.spend.by_provider();
        if let Some(s) = r.ctx.settlement.take() {
            s.settle(spent, cost, by_provider);
        }
        // The concurrency slot is free now, not when the line is written.
        r.ctx.permit = None;
        // While tracing is on, the line's own event decides whether it is
        // wanted, when it is written (`access_line::wanted`).
        if !telemetry::tracing_on() && !access_line::wanted() {
            return;
        }
        let line = AccessLine {
            ctx: r.ctx,
            status: r.status,
            error: r.error,
            outcome,
            ms: elapsed.as_millis() as u64,
        };
        // Written once the connection has sent this answer (`access_line`).
        match r.conn {
            Some(conn) => conn.activity().after_write.push(Box::new(line)),
            None => line.write(),
        }
    }
}

impl<B: HttpBody> Drop for Tracked<B> {
    fn drop(&mut self) {
        // An empty body is never polled: it ended, it was not abandoned.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

impl<B: HttpBody + Unpin> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(_)) if self.inner.is_end_stream() => self.finish(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
