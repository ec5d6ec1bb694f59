//! The per-request context, the admission a request holds, and the
//! accounting step that reads the context once when the response has been
//! sent.
//!
//! Place in the pipeline: [`account`] is an edge step (just inside the
//! request id and the trace span, outside catch-panic). It makes the
//! [`RequestCtx`] and lends it, through a [`CtxSlot`] in the request's
//! extensions, to dispatch and the endpoint handlers, which fill it in
//! (route, provider, attempts, cache state, what the answer spent). The lease
//! returns the context when dispatch ends, even by a panic, and `account`
//! moves it into [`Tracked`], the response body wrapper, with the final
//! status. When the body ends (or the client goes away) it writes the access
//! log line, the request metrics and the token and cost metrics
//! (`usage::settle`), once, so durations and stream usage cover the whole
//! body. An [`Admission`] (a concurrency-limit permit plus the in-flight
//! gauge) is shared by everything that works for the request: the handler, a
//! single-flight leader's task, a stream body; it is released when the last
//! of them ends. Must not decide anything about the request: it only records.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use prometheus::IntGauge;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use crate::metrics::{Metrics, UNKNOWN_KEY, UNKNOWN_ROUTE};

/// Holds one unit of the gateway's concurrency limit and counts in
/// `switchyard_requests_in_flight` while any holder lives.
#[derive(Debug)]
pub(super) struct Admission {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Admission {
    pub(super) fn new(permit: OwnedSemaphorePermit, metrics: &Metrics) -> Arc<Self> {
        metrics.in_flight.inc();
        Arc::new(Admission {
            _permit: permit,
            gauge: metrics.in_flight.clone(),
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Counts requests in flight on one client connection (for its idle timeout).
#[derive(Debug, Default)]
pub(super) struct ConnActivity {
    pub in_flight: std::sync::atomic::AtomicUsize,
    pub changed: tokio::sync::Notify,
}

/// What `accept` knows about a request's connection; a request extension.
#[derive(Debug, Clone)]
pub(super) struct ConnInfo {
    pub peer: SocketAddr,
    pub activity: Arc<ConnActivity>,
}

struct ConnGuard(Arc<ConnActivity>);

impl ConnGuard {
    fn enter(a: &Arc<ConnActivity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::SeqCst);
        a.changed.notify_waiters();
        ConnGuard(Arc::clone(a))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Everything known about one request, read once at the end.
pub(super) struct RequestCtx {
    pub request_id: String,
    pub method: Method,
    pub path: String,
    pub endpoint: &'static str,
    /// A configured route name, or `_unknown`.
    pub route: String,
    pub provider: Option<Arc<str>>,
    pub attempts: u32,
    pub cache: Option<&'static str>,
    pub started: Instant,
    /// Set by a stream that failed after its response started.
    pub interrupted: Arc<AtomicBool>,
    pub admission: Option<Arc<Admission>>,
    /// The caller's virtual-key alias for logs and metrics (`_unknown` when
    /// it sent no configured key); never the key itself.
    pub key_alias: Arc<str>,
    /// What admission reserved, settled with the answer's usage at the end.
    pub settlement: Option<super::admission::Settlement>,
    /// What the answer spent upstream (tokens per served model).
    pub spend: super::usage::Spend,
}

impl RequestCtx {
    /// The context of `req`, whose `x-request-id` the edge has already set.
    pub(super) fn for_request<B>(req: &Request<B>) -> Self {
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        RequestCtx {
            request_id,
            method: req.method().clone(),
            path: req.uri().path().trim_end_matches('/').to_string(),
            endpoint: "other",
            route: UNKNOWN_ROUTE.to_string(),
            provider: None,
            attempts: 0,
            cache: None,
            started: Instant::now(),
            interrupted: Arc::default(),
            admission: None,
            key_alias: Arc::from(UNKNOWN_KEY),
            settlement: None,
            spend: Default::default(),
        }
    }

    /// The request was routed by `route` (also recorded in its span).
    pub(super) fn routed(&mut self, route: &str) {
        self.route.clear();
        self.route.push_str(route);
        tracing::Span::current().record("route", tracing::field::display(route));
    }

    /// `provider` answered after `attempts` (also recorded in its span).
    pub(super) fn served_by(&mut self, provider: &str, attempts: u32) {
        self.provider = Some(Arc::from(provider));
        self.attempts = attempts;
        tracing::Span::current().record("provider", tracing::field::display(provider));
    }
}

/// Lends the request's context from `account` to dispatch; a request
/// extension (extensions must be `Clone`, hence the shared cell).
#[derive(Clone)]
pub(super) struct CtxSlot(Arc<Mutex<Option<RequestCtx>>>);

impl CtxSlot {
    fn take(&self) -> Option<RequestCtx> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Changes the context in place (if it is not lent out).
    pub(super) fn update(&self, f: impl FnOnce(&mut RequestCtx)) {
        if let Some(rc) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            f(rc);
        }
    }

    /// Borrows the context until the lease is dropped.
    pub(super) fn lease(&self) -> Lease {
        Lease {
            slot: self.clone(),
            rc: self.take(),
        }
    }
}

/// A borrowed [`RequestCtx`]; put back into its slot on drop, including when
/// a panic unwinds the handler, so the access log still gets it.
pub(super) struct Lease {
    slot: CtxSlot,
    pub rc: Option<RequestCtx>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(rc) = self.rc.take() {
            *self.slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(rc);
        }
    }
}

/// The accounting step: makes the request's context and the connection's
/// in-flight mark, lends the context to the inner steps, and wraps the final
/// response's body in [`Tracked`] with the status the client gets.
pub(super) fn account<S, B, RB>(
    inner: S,
    metrics: Arc<Metrics>,
) -> impl Service<Request<B>, Response = Response<Tracked<RB>>, Error = S::Error, Future: Send + 'static>
+ Clone
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: HttpBody,
{
    tower::service_fn(move |mut req: Request<B>| {
        let conn = req
            .extensions()
            .get::<ConnInfo>()
            .map(|c| ConnGuard::enter(&c.activity));
        let slot = CtxSlot(Arc::new(Mutex::new(Some(RequestCtx::for_request(&req)))));
        req.extensions_mut().insert(slot.clone());
        let (inner, metrics) = (inner.clone(), Arc::clone(&metrics));
        async move {
            let response = inner.oneshot(req).await?;
            let status = response.status().as_u16();
            let record = slot.take().map(|ctx| Record {
                ctx,
                status,
                metrics,
                _conn: conn,
            });
            Ok(response.map(|inner| Tracked { inner, record }))
        }
    })
}

/// The response body, carrying the request's context until it has been
/// sent or abandoned.
pub(super) struct Tracked<B: HttpBody> {
    inner: B,
    record: Option<Record>,
}

struct Record {
    ctx: RequestCtx,
    status: u16,
    metrics: Arc<Metrics>,
    _conn: Option<ConnGuard>,
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
        tracing::info!(
            target: "switchyard::access",
            method = %c.method,
            path = c.path,
            status = r.status,
            endpoint = c.endpoint,
            route = c.route,
            key = &*c.key_alias,
            provider = c.provider.as_deref().unwrap_or("-"),
            model = c.spend.model().unwrap_or("-"),
            attempts = c.attempts,
            cache = c.cache.unwrap_or("-"),
            outcome,
            ms = elapsed.as_millis() as u64,
            request_id = c.request_id,
        );
        let status = if interrupted {
            "stream_error".to_string()
        } else {
            r.status.to_string()
        };
        r.metrics
            .requests
            .with_label_values(&[c.endpoint, &c.route, &status])
            .inc();
        r.metrics
            .request_duration
            .with_label_values(&[c.endpoint, &c.route])
            .observe(elapsed.as_secs_f64());
        let (route, key) = (&c.route, &c.key_alias);
        let (usage, cost) = super::usage::settle(&r.metrics, route, key, &c.spend);
        if let Some(s) = r.ctx.settlement.take() {
            s.settle(usage, cost, r.ctx.spend.by_provider());
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
