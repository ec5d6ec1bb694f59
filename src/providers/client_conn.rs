//! Upstream connections of one provider: counted, and never more than the
//! requests in flight to it.
//!
//! Place in the pipeline: under [`super::client`], between a pool (hyper's,
//! or [`super::client_h1`]'s, which waits with [`Gauge::slot_or`] for a slot
//! or an idle connection, whichever comes first) and the TCP/TLS connector. A pool that finds no idle connection starts a
//! connect and, at the same time, waits for a connection to come back; when
//! the connection comes back first, the connect still finishes and parks an
//! extra connection. Under a burst that is how 512 clients held 650-700
//! upstream connections. Here a connect first takes a slot, and a slot
//! exists only while fewer connections are open than requests are in
//! flight ([`Gauge::in_flight`] counts a request from its send to the end
//! of its body); a connect that finds none waits until one frees (a
//! request starts, a connection closes) or until its connect timeout. A
//! slot is held by the connection's I/O and released when hyper drops it,
//! so a closed or cancelled connection gives its slot back. Must not know
//! HTTP: it sees a `Uri` and a byte stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::Notify;
use tokio::time::{Instant, timeout_at};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Open connections and requests in flight of one provider.
#[derive(Debug, Default)]
pub(super) struct Gauge {
    open: AtomicUsize,
    in_flight: AtomicUsize,
    /// Connects waiting for a slot (so nobody else pays for a wake-up).
    waiting: AtomicUsize,
    changed: Notify,
}

impl Gauge {
    /// Counts one request in flight until the guard drops.
    pub(super) fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, SeqCst);
        self.wake();
        InFlight(Arc::clone(self))
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.open.load(SeqCst)
    }

    /// Wakes the connects waiting for a slot (a request started, a
    /// connection closed or came back idle).
    pub(super) fn wake(&self) {
        if self.waiting.load(SeqCst) > 0 {
            self.changed.notify_waiters();
        }
    }

    /// Takes a slot when fewer connections are open than requests in flight.
    fn try_slot(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.load(SeqCst);
        loop {
            if open >= self.in_flight.load(SeqCst) {
                return None;
            }
            match self.open.compare_exchange(open, open + 1, SeqCst, SeqCst) {
                Ok(_) => return Some(Slot(Arc::clone(self))),
                Err(now) => open = now,
            }
        }
    }

    /// Waits for a slot.
    async fn slot(self: &Arc<Self>) -> Slot {
        match self.slot_or(|| None::<std::convert::Infallible>).await {
            Ok(slot) => slot,
            Err(never) => match never {},
        }
    }

    /// Waits for a slot, or for `idle` to find a connection to use
    /// instead (checked first, and again at each wake-up).
    pub(super) async fn slot_or<T>(
        self: &Arc<Self>,
        mut idle: impl FnMut() -> Option<T>,
    ) -> Result<Slot, T> {
        if let Some(found) = idle() {
            return Err(found);
        }
        if let Some(slot) = self.try_slot() {
            return Ok(slot);
        }
        self.waiting.fetch_add(1, SeqCst);
        let _waiting = Waiting(self);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(found) = idle() {
                return Err(found);
            }
            if let Some(slot) = self.try_slot() {
                return Ok(slot);
            }
            notified.await;
        }
    }
}

struct Waiting<'a>(&'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

/// One request in flight (see [`Gauge::in_flight`]).
#[derive(Debug)]
pub(super) struct InFlight(Arc<Gauge>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

/// The right to hold one open connection.
#[derive(Debug)]
pub(super) struct Slot(Arc<Gauge>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, SeqCst);
        self.0.wake();
    }
}

/// The connect took longer than the provider's connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out")]
pub(super) struct ConnectTimeout;

/// No connection slot freed within the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("no upstream connection became free within the connect timeout")]
pub(super) struct NoSlot;

/// A connector whose connections each hold a [`Gauge`] slot, under one
/// deadline for the slot, TCP and TLS together.
#[derive(Clone, Debug)]
pub(super) struct Counted<C> {
    pub(super) inner: C,
    pub(super) gauge: Arc<Gauge>,
    pub(super) timeout: Duration,
}

impl<C> tower::Service<http::Uri> for Counted<C>
where
    C: tower::Service<http::Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    C::Response: Send,
{
    type Response = CountedIo<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // The clone that was polled ready does the call (tower's rule).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let gauge = Arc::clone(&self.gauge);
        let deadline = Instant::now() + self.timeout;
        Box::pin(async move {
            let slot = timeout_at(deadline, gauge.slot())
                .await
                .map_err(|_| NoSlot)?;
            connect(&mut inner, uri, slot, deadline).await
        })
    }
}

/// Opens a connection to `uri` through `connector` holding `slot`, by
/// `deadline` (the one the slot was waited for under: slot, TCP and TLS
/// share it).
pub(super) async fn connect<C>(
    connector: &mut C,
    uri: http::Uri,
    slot: Slot,
    deadline: Instant,
) -> Result<CountedIo<C::Response>, BoxError>
where
    C: tower::Service<http::Uri>,
    C::Error: Into<BoxError>,
{
    match timeout_at(deadline, connector.call(uri)).await {
        Err(_) => Err(ConnectTimeout.into()),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(io)) => Ok(CountedIo { io, _slot: slot }),
    }
}

/// A connection's I/O holding its slot.
#[derive(Debug)]
pub(super) struct CountedIo<T> {
    io: T,
    _slot: Slot,
}

impl<T: Connection> Connection for CountedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for CountedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for CountedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_exists_only_for_a_request_without_a_connection() {
        let gauge = Arc::new(Gauge::default());
        assert!(gauge.try_slot().is_none(), "nothing in flight");
        let one = gauge.in_flight();
        let slot = gauge.try_slot().expect("one request, no connection");
        assert_eq!(gauge.open(), 1);
        assert!(gauge.try_slot().is_none(), "one request, one connection");
        // A waiting connect gets the slot a new request makes.
        let waiter = tokio::spawn({
            let gauge = Arc::clone(&gauge);
            async move { gauge.slot().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let two = gauge.in_flight();
        let second = waiter.await.unwrap();
        assert_eq!(gauge.open(), 2);
        drop((slot, second, one, two));
        assert_eq!(gauge.open(), 0);
        assert_eq!(gauge.in_flight.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn a_closed_connection_frees_its_slot_for_a_waiting_connect() {
        let gauge = Arc::new(Gauge::default());
        let _req = gauge.in_flight();
        let held = gauge.try_slot().unwrap();
        let waiter = tokio::spawn({
            let gauge = Arc::clone(&gauge);
            async move { gauge.slot().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        let _slot = waiter.await.unwrap();
        assert_eq!(gauge.open(), 1);
    }
}
