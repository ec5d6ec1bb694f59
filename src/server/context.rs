//! The per-request context, the admission a request holds, and the body
//! wrapper that reads the context once when the response has been sent.
//!
//! Place in the pipeline: created by `stack` at the edge, filled in by the
//! endpoint handlers (route, provider, attempts, cache state), and moved
//! into [`Tracked`], the response body wrapper. When the body ends (or the
//! client goes away) it writes the access log line and the request metrics,
//! so durations cover the whole body, streams included. An [`Admission`]
//! (a concurrency-limit permit plus the in-flight gauge) is shared by
//! everything that works for the request: the handler, a single-flight
//! leader's task, a stream body; it is released when the last of them ends.
//! Must not decide anything about the request: it only records.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Method;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use prometheus::IntGauge;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::http::Body;
use crate::metrics::{Metrics, UNKNOWN_ROUTE};

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
    _conn: ConnGuard,
}

impl RequestCtx {
    pub(super) fn new(
        request_id: String,
        method: Method,
        path: String,
        conn: &Arc<ConnActivity>,
    ) -> Self {
        RequestCtx {
            request_id,
            method,
            path,
            endpoint: "other",
            route: UNKNOWN_ROUTE.to_string(),
            provider: None,
            attempts: 0,
            cache: None,
            started: Instant::now(),
            interrupted: Arc::default(),
            admission: None,
            _conn: ConnGuard::enter(conn),
        }
    }

    pub(super) fn served_by(&mut self, provider: &str, attempts: u32) {
        self.provider = Some(Arc::from(provider));
        self.attempts = attempts;
    }
}

/// The response body, carrying the request's context until it has been
/// sent or abandoned.
pub(super) struct Tracked {
    inner: Body,
    record: Option<Record>,
}

struct Record {
    ctx: RequestCtx,
    status: u16,
    metrics: Arc<Metrics>,
}

impl Tracked {
    pub(super) fn new(inner: Body, ctx: RequestCtx, status: u16, metrics: Arc<Metrics>) -> Self {
        Tracked {
            inner,
            record: Some(Record {
                ctx,
                status,
                metrics,
            }),
        }
    }

    fn finish(&mut self, complete: bool) {
        let Some(r) = self.record.take() else { return };
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
            provider = c.provider.as_deref().unwrap_or("-"),
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
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
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
