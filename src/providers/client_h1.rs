//! Plain HTTP/1 upstreams (`http://`: a local model server, a sidecar)
//! without a task per connection: the request's own task reads and writes
//! its connection.
//!
//! Place in the pipeline: under [`super::client`], which sends `http://`
//! requests here and everything else (TLS, HTTP/2 by ALPN) through
//! hyper's pooled client. hyper's pool runs each connection as a task of
//! its own: a request is handed to that task, the answer and every chunk
//! of its body handed back, a wake-up each way. Here a request takes an
//! idle connection (the most recently used), or opens one under the same
//! slot rule as hyper's pool ([`super::client_conn`]: never more
//! connections than requests in flight), and speaks HTTP/1.1 on it itself
//! ([`super::client_h1_conn`]); the body read to its end puts the
//! connection back, idle. A connection whose request or body is dropped
//! is closed with it (as hyper's pool closes an HTTP/1 connection whose
//! request is cancelled). Idle connections are watched by one task per
//! pool ([`super::client_h1_idle`]), and a request an idle connection gave
//! back unsent (it closed as it was taken) goes out on another. Must not
//! retry a request the upstream may have seen, time a body or read one.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Uri};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, timeout_at};

use super::client_conn::{Gauge, NoSlot, Slot, connect};
use super::client_egress::Egress;
use super::client_h1_idle::{IdleSet, Lease};
use super::client_h1_wire::WireError;
use super::pieces::Pieces;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sending failed: before a connection was had, or on it.
#[derive(Debug)]
pub(super) enum H1Error {
    Connect(BoxError),
    Send(WireError),
}

/// The idle HTTP/1 connections of one provider.
pub(super) struct H1Pool {
    idle: Arc<IdleSet>,
    egress: Egress,
    gauge: Arc<Gauge>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool").finish_non_exhaustive()
    }
}

impl H1Pool {
    pub(super) fn new(
        egress: Egress,
        gauge: Arc<Gauge>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(H1Pool {
            idle: IdleSet::new(idle_timeout),
            egress,
            gauge,
            connect_timeout,
        })
    }

    /// Sends `req` (an absolute `http://` URI) and waits for the answer's
    /// head; the body reads the connection from then on.
    pub(super) async fn send(
        self: &Arc<Self>,
        req: http::Request<Pieces>,
    ) -> Result<(http::response::Parts, Driven), H1Error> {
        let (parts, body) = req.into_parts();
        let Some(authority) = parts.uri.authority() else {
            return Err(H1Error::Connect("the URL has no host".into()));
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = parts.headers;
        loop {
            let (mut lease, reused) = self.lease(&parts.uri, authority).await?;
            let sent = lease
                .conn
                .send(&parts.method, path, authority.as_str(), &mut headers, &body)
                .await;
            match sent {
                Ok(head) => {
                    let mut body = Driven {
                        lease: Some(lease),
                        pool: Arc::clone(self),
                    };
                    body.put_back_when_done(&mut Context::from_waker(std::task::Waker::noop()));
                    return Ok((head, body));
                }
                // An idle connection that closed as it was taken: the
                // request never left, so it goes out on another.
                Err(e) if e.unsent && reused => {}
                Err(e) => return Err(H1Error::Send(e.error)),
            }
        }
    }

    /// An idle connection to `authority` (`true`), or a new one.
    async fn lease(&self, uri: &Uri, authority: &Authority) -> Result<(Box<Lease>, bool), H1Error> {
        let deadline = Instant::now() + self.connect_timeout;
        let slot = timeout_at(deadline, self.gauge.slot_or(|| self.idle.take(authority)))
            .await
            .map_err(|_| H1Error::Connect(NoSlot.into()))?;
        let slot = match slot {
            Ok(slot) => slot,
            Err(idle) => return Ok((idle, true)),
        };
        // Boxed: opening is rare, and its future (connect and handshake,
        // about 1 KB) would otherwise enlarge every request's future above
        // this one, which is copied whole wherever it is moved or boxed.
        let lease = Box::pin(self.open(uri, authority, slot, deadline)).await?;
        Ok((lease, false))
    }

    /// A new connection to `authority` in `slot`, opened by `deadline`.
    async fn open(
        &self,
        uri: &Uri,
        authority: &Authority,
        slot: Slot,
        deadline: Instant,
    ) -> Result<Box<Lease>, H1Error> {
        let mut egress = self.egress.clone();
        let io = connect(&mut egress, uri.clone(), slot, deadline)
            .await
            .map_err(H1Error::Connect)?;
        Ok(Lease::new(io, authority.clone()))
    }

    #[cfg(test)]
    pub(super) fn gauge_for_tests(&self) -> &Arc<Gauge> {
        &self.gauge
    }

    /// Idle connections now.
    #[cfg(test)]
    pub(super) fn idle_for_tests(&self) -> usize {
        self.idle.len()
    }

    /// `lease` back, idle (after its answer's body was read to the end).
    fn put(&self, lease: Box<Lease>, cx: &mut Context<'_>) {
        self.idle.put(lease, cx);
        self.gauge.wake();
    }
}

/// An answer's body that reads its connection, which goes back to the
/// pool as soon as the body has been read to its end.
pub(super) struct Driven {
    /// `None` once the body ended (the connection put back or closed).
    lease: Option<Box<Lease>>,
    pool: Arc<H1Pool>,
}

impl std::fmt::Debug for Driven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driven").finish_non_exhaustive()
    }
}

impl Driven {
    /// Puts the connection back (or closes it) once the body has ended.
    fn put_back_when_done(&mut self, cx: &mut Context<'_>) {
        if self.lease.as_ref().is_some_and(|l| l.conn.body_done())
            && let Some(mut lease) = self.lease.take()
            && lease.conn.reusable()
        {
            self.pool.put(lease, cx);
        }
    }
}

impl Body for Driven {
    type Data = Bytes;
    type Error = WireError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WireError>>> {
        let this = &mut *self;
        let Some(lease) = &mut this.lease else {
            return Poll::Ready(None);
        };
        let data = std::task::ready!(lease.conn.poll_data(cx));
        if let Some(Err(_)) = &data {
            this.lease = None;
        } else {
            this.put_back_when_done(cx);
        }
        Poll::Ready(data.map(|d| d.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.lease.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.lease {
            Some(lease) => lease.conn.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
#[path = "client_h1_tests.rs"]
mod tests;
