//! Plain HTTP/1 upstreams (`http://`: a local model server, a sidecar)
//! without a task per connection: the request's own task drives its
//! connection.
//!
//! Place in the pipeline: under [`super::client`], which sends `http://`
//! requests here and everything else (TLS, HTTP/2 by ALPN) through
//! hyper's pooled client. hyper's pool runs each connection as a task of
//! its own: a request is handed to that task, the answer and every chunk
//! of its body handed back, a wake-up each way. Here a request takes an
//! idle connection (the most recently used), or opens one under the same
//! slot rule as hyper's pool ([`super::client_conn`]: never more
//! connections than requests in flight), and polls the connection itself
//! while it waits for the head and reads the body; a body read to its end
//! puts the connection back, idle. A connection whose request or body is
//! dropped is closed with it (as hyper's pool closes an HTTP/1 connection
//! whose request is cancelled). Idle connections are watched by one task
//! per pool ([`super::client_h1_idle`]), and a request an idle connection
//! gave back unsent (it closed as it was taken) goes out on another. Must not retry a request the upstream may have seen,
//! time a body or read one.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use tokio::time::{Instant, timeout_at};

use super::client_conn::{Gauge, NoSlot, Slot, connect};
use super::client_egress::Egress;
use super::client_h1_idle::{IdleSet, Lease};
use super::pieces::Pieces;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most an upstream connection's read buffer grows to, here and in
/// hyper's pooled client. A buffer keeps its size while its connection is
/// idle in the pool, and hyper's default (about 408 KiB) is reached by one
/// large answer (a batch of embeddings): 13 such idle connections held
/// 5.8 MiB in `cargo bench --bench memory`. At 64 KiB a large answer takes a
/// few more reads (the 2.9 MB embedding answer of the proxy bench: no
/// slower).
pub(super) const READ_BUFFER_MAX: usize = 64 * 1024;

/// Sending failed: before a connection was had, or on it.
#[derive(Debug)]
pub(super) enum H1Error {
    Connect(BoxError),
    Send(hyper::Error),
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
    /// head; the body drives the connection from then on.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut req: http::Request<Pieces>,
    ) -> Result<(http::response::Parts, Driven), H1Error> {
        let uri = req.uri().clone();
        let Some(authority) = uri.authority().cloned() else {
            return Err(H1Error::Connect("the URL has no host".into()));
        };
        // Origin form, and `Host` as hyper's pool writes them.
        *req.uri_mut() = match uri.path_and_query() {
            Some(path) => Uri::from(path.clone()),
            None => Uri::from_static("/"),
        };
        if !req.headers().contains_key(http::header::HOST) {
            let host = http::HeaderValue::from_str(authority.as_str())
                .map_err(|e| H1Error::Connect(e.into()))?;
            req.headers_mut().insert(http::header::HOST, host);
        }
        loop {
            let (mut lease, reused) = self.lease(&uri, &authority).await?;
            let mut answer = std::pin::pin!(lease.tx.try_send_request(req));
            let sent = poll_fn(|cx| {
                lease.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match sent {
                Ok(response) => {
                    let (head, body) = response.into_parts();
                    let body = Driven {
                        body,
                        lease: Some(lease),
                        pool: Arc::clone(self),
                    };
                    return Ok((head, body));
                }
                Err(mut e) => match e.take_message() {
                    // An idle connection that closed as it was taken: the
                    // request never left, so it goes out on another.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(H1Error::Send(e.into_error())),
                },
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
        let (tx, conn) = http1::Builder::new()
            .max_buf_size(READ_BUFFER_MAX)
            .handshake(io)
            .await
            .map_err(|e| H1Error::Connect(e.into()))?;
        Ok(Lease::new(tx, conn, authority.clone()))
    }

    /// `lease` back, idle (after its answer's body was read to the end).
    fn put(&self, lease: Box<Lease>, cx: &mut Context<'_>) {
        self.idle.put(lease, cx);
        self.gauge.wake();
    }
}

/// An answer's body that drives its connection, which goes back to the
/// pool when the body has been read to its end.
pub(super) struct Driven {
    body: Incoming,
    lease: Option<Box<Lease>>,
    pool: Arc<H1Pool>,
}

impl std::fmt::Debug for Driven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driven").finish_non_exhaustive()
    }
}

impl Body for Driven {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(lease) = &mut this.lease {
            lease.drive(cx);
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => {
                if let Some(lease) = this.lease.take() {
                    this.pool.put(lease, cx);
                }
            }
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
#[path = "client_h1_tests.rs"]
mod tests;
