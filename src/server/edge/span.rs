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
use tracing::Level;
use tracing::field::Empty;

use crate::on_wake::Gate;
use crate::telemetry::{self, RequestScope, SpanText};

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
        let scope = request_scope(&mut req);
        let inner = scope.in_scope(|| self.inner.call(req));
        Spanned {
            inner,
            scope: Some(scope),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, polled in the request's scope, which then goes
    /// with the answer's body.
    pub(super) struct Spanned<F> {
        #[pin]
        inner: F,
        scope: Option<RequestScope>,
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
            let _in = this.scope.as_ref().map(RequestScope::enter);
            ready!(this.inner.poll(cx))?
        };
        let scope = this.scope.take().unwrap_or_else(RequestScope::none);
        Poll::Ready(Ok(response.map(|inner| SpanBody::new(inner, scope))))
    }
}

/// A response body polled in its request's span. Once it has had to
/// wait (a stream), it is polled only after each frame and after a
/// wake-up of its own ([`Gate`]): hyper polls a streamed body once more
/// after each chunk than the poll that found it empty (to see whether its
/// flush made room), and that poll no longer enters the span and walks
/// the body's layers down to the upstream's socket for nothing. A whole
/// answer never waits and never has a gate.
pub(crate) struct SpanBody<B> {
    inner: B,
    scope: RequestScope,
    gate: Option<Gate>,
}

impl<B> SpanBody<B> {
    fn new(inner: B, scope: RequestScope) -> Self {
        SpanBody {
            inner,
            scope,
            gate: None,
        }
    }
}

impl<B: HttpBody + Unpin> HttpBody for SpanBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let SpanBody { inner, scope, gate } = &mut *self;
        let mut frame = |cx: &mut Context<'_>| {
            let _in = scope.enter();
            Pin::new(&mut *inner).poll_frame(cx)
        };
        if let Some(gate) = gate {
            return gate.poll(cx, frame);
        }
        let out = frame(cx);
        if out.is_pending() {
            // It waits on the task's own waker this time; a new gate lets
            // the next poll through, which hands it the gate's.
            *gate = Some(Gate::new());
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request span's name.
pub(super) const REQUEST_SPAN: &str = telemetry::REQUEST_SPAN;

/// The request's span. When tracing is on it is also the exported server
/// span: a child of the client's `traceparent` when it sent one, named
/// `METHOD /path` (the edge renames it `operation route` once routed), with
/// its trace id as a field so that every log line in it carries it. Where
/// the text log writes every line that shows them, the span is its fields
/// kept as a [`SpanText`] alone, not a span in the registry: the request
/// context records into the one in the request's extensions, and the
/// scope enters it wherever the span would have been entered (only when
/// the log's level lets the span be, as the span would be).
fn request_scope<B>(req: &mut Request<B>) -> RequestScope {
    let id = req
        .headers()
        .get(&super::request_id::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    if telemetry::span_text_on() {
        let text = SpanText::request(id, req.method().as_str(), req.uri().path());
        let scope = if tracing::span_enabled!(Level::INFO) {
            RequestScope::text(text.clone())
        } else {
            RequestScope::none()
        };
        req.extensions_mut().insert(text);
        return scope;
    }
    if !telemetry::tracing_on() {
        return RequestScope::span(tracing::info_span!(
            "request",
            id = %id,
            method = %req.method(),
            path = %req.uri().path(),
            route = Empty,
            provider = Empty,
        ));
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
    RequestScope::span(span)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    /// A waker that counts its wake-ups (the connection task's, in tests).
    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    type Polls = Arc<AtomicUsize>;

    /// A streamed body fed by `tx`, counting how often it is polled.
    fn streamed() -> (
        tokio::sync::mpsc::UnboundedSender<Bytes>,
        Polls,
        impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let polls = Polls::default();
        let counted = Arc::clone(&polls);
        let frames = futures_util::stream::poll_fn(move |cx| {
            counted.fetch_add(1, Ordering::SeqCst);
            rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        });
        (tx, polls, StreamBody::new(frames))
    }

    /// What one poll of a body gives.
    type Polled<B> = Poll<Option<Result<Frame<<B as HttpBody>::Data>, <B as HttpBody>::Error>>>;

    fn poll<B: HttpBody + Unpin>(body: &mut SpanBody<B>, waker: &Waker) -> Polled<B> {
        Pin::new(body).poll_frame(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_stream_is_walked_again_only_after_a_frame_or_its_own_wake_up() {
        let (tx, polls, inner) = streamed();
        let mut body = SpanBody::new(inner, RequestScope::none());
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        // The first wait is on the task's waker; the next poll goes down
        // once more to hand the stream the gate's.
        assert!(poll(&mut body, &waker).is_pending());
        assert!(body.gate.is_some());
        assert!(poll(&mut body, &waker).is_pending());
        // Polled again with nothing new (hyper's look after its flush):
        // the stream is not walked.
        for _ in 0..3 {
            assert!(poll(&mut body, &waker).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        // A chunk wakes the task that polled, and the next poll takes it.
        tx.send(Bytes::from_static(b"data: 1\n\n")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(Some(Ok(frame))) = poll(&mut body, &waker) else {
            panic!("the chunk is there");
        };
        assert_eq!(frame.into_data().unwrap(), "data: 1\n\n");
        // After a frame the stream is looked at again at once (the next
        // may be there already), then left alone until it wakes.
        tx.send(Bytes::from_static(b"data: 2\n\n")).unwrap();
        assert!(poll(&mut body, &waker).is_ready());
        assert!(poll(&mut body, &waker).is_pending());
        assert!(poll(&mut body, &waker).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 5);
        drop(tx);
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(None)));
    }

    #[test]
    fn a_stream_that_waited_once_on_the_tasks_waker_is_not_lost() {
        // The chunk comes between the first wait (on the task's waker)
        // and the next poll: that poll must still go down and take it.
        let (tx, polls, inner) = streamed();
        let mut body = SpanBody::new(inner, RequestScope::none());
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        assert!(poll(&mut body, &waker).is_pending());
        tx.send(Bytes::from_static(b"data: 1\n\n")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task's waker");
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(Some(Ok(_)))));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_whole_answer_is_polled_through_and_gets_no_gate() {
        let full = Full::new(Bytes::from_static(b"{}"));
        let mut body = SpanBody::new(full.boxed_unsync(), RequestScope::none());
        let waker = Waker::from(Arc::new(Count::default()));
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(None)));
        assert!(body.gate.is_none());
    }
}
