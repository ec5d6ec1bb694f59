//! The request's span: made at the edge, entered whenever the request's
//! work or its answer's body is polled, so that every log line and child
//! span of the request carries it.
//!
//! Place in the pipeline: the edge layer right inside the request id
//! (which the span names) and outside accounting (whose access line is
//! written inside it). tower-http's `TraceLayer` did this job, and also
//! read the clock on every body frame for callbacks the gateway does not
//! use. Must not log, time or change the request or its answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tower::Service;
use tracing::Span;
use tracing::field::Empty;

use crate::telemetry::{self, SpanText};

/// `inner`, run in each request's span, its answer's body too.
pub(super) fn in_span<S>(inner: S) -> InSpan<S> {
    InSpan { inner }
}

/// The step (see [`in_span`]): a plain service and future, as
/// `request_id`'s (an `async` block would hold the request twice).
#[derive(Clone, Debug)]
pub(super) struct InSpan<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for InSpan<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<SpanBody<RB>>;
    type Error = S::Error;
    type Future = Spanned<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let span = request_span(&mut req);
        let inner = span.in_scope(|| self.inner.call(req));
        Spanned {
            inner,
            span: Some(span),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, polled in the request's span, which then goes
    /// with the answer's body.
    pub(super) struct Spanned<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
    }
}

impl<F, RB, E> Future for Spanned<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<SpanBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = {
            let _in = this.span.as_ref().map(Span::enter);
            ready!(this.inner.poll(cx))?
        };
        let span = this.span.take().unwrap_or_else(Span::none);
        Poll::Ready(Ok(response.map(|inner| SpanBody { inner, span })))
    }
}

/// A response body polled in its request's span.
pub(crate) struct SpanBody<B> {
    inner: B,
    span: Span,
}

impl<B: HttpBody + Unpin> HttpBody for SpanBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let _in = this.span.enter();
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request span's name.
pub(super) const REQUEST_SPAN: &str = "request";

/// The request's span. When tracing is on it is also the exported server
/// span: a child of the client's `traceparent` when it sent one, named
/// `METHOD /path` (the edge renames it `operation route` once routed), with
/// its trace id as a field so that every log line in it carries it. Where
/// the text log writes every line that shows them, its fields are kept as
/// a [`SpanText`] beside it instead (the request context records into the
/// one in the request's extensions).
fn request_span<B>(req: &mut Request<B>) -> Span {
    let id = req
        .headers()
        .get(&super::request_id::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    if telemetry::span_text_on() {
        let span = tracing::info_span!(REQUEST_SPAN);
        let text = SpanText::request(id, req.method().as_str(), req.uri().path());
        text.attach(&span);
        req.extensions_mut().insert(text);
        return span;
    }
    if !telemetry::tracing_on() {
        return tracing::info_span!(
            "request",
            id = %id,
            method = %req.method(),
            path = %req.uri().path(),
            route = Empty,
            provider = Empty,
        );
    }
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        route = Empty,
        provider = Empty,
        trace_id = Empty,
        otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server",
        otel.status_code = Empty,
    );
    telemetry::w3c::continue_trace(&span, req.headers());
    span
}
