//! One plain HTTP/1.1 upstream connection, spoken by the gateway itself:
//! a request written in one vectored write (head and body pieces), the
//! answer's head parsed from a read buffer the connection keeps, and its
//! body read by the task that waits for it.
//!
//! Place in the pipeline: held by a [`super::client_h1_idle::Lease`],
//! between [`super::client_h1`]'s pool and the socket; the framing is
//! [`super::client_h1_wire`]'s. It replaces hyper's client connection for
//! `http://` upstreams, which handed every request, answer and body chunk
//! between the request and a dispatcher through channels. One request at
//! a time; the connection may carry the next one only when the answer
//! was read to its end with nothing after it and the upstream keeps it
//! alive. Must not retry, time anything, or pool itself.

use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use hyper::body::SizeHint;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::client_conn::CountedIo;
use super::client_h1_wire::{Chunks, Framing, Step, WireError, parse_head, take, write_head};
use super::pieces::Pieces;

/// A connection's bytes: TCP (or a proxy's tunnel), holding its slot.
pub(super) type Io = CountedIo<MaybeHttpsStream<TokioIo<TcpStream>>>;

/// The most an upstream connection's read buffer grows to, here and in
/// hyper's pooled client. A buffer keeps its size while its connection is
/// idle in the pool, and hyper's default (about 408 KiB) is reached by one
/// large answer (a batch of embeddings): 13 such idle connections held
/// 5.8 MiB in `cargo bench --bench memory`. At 64 KiB a large answer takes a
/// few more reads (the 2.9 MB embedding answer of the proxy bench: no
/// slower).
pub(super) const READ_BUFFER_MAX: usize = 64 * 1024;

/// The read buffer's first size; it grows (by the answer) up to
/// [`READ_BUFFER_MAX`].
const READ_FIRST: usize = 8 * 1024;

/// A buffer this large is not kept by an idle connection.
const KEEP_IDLE: usize = 16 * 1024;

/// A send that failed; `unsent` when not a byte of the request left, so
/// it may go out on another connection.
#[derive(Debug)]
pub(super) struct SendError {
    pub(super) error: WireError,
    pub(super) unsent: bool,
}

/// Where the answer's body is.
#[derive(Debug)]
enum Body {
    /// Read to its end (or none).
    Done,
    Length(u64),
    Chunked(Chunks),
    Close,
}

/// A connection and its buffers.
pub(super) struct Conn {
    io: TokioIo<Io>,
    /// Bytes read and not yet taken.
    buf: BytesMut,
    /// The request head being written (kept for the next).
    head: Vec<u8>,
    body: Body,
    /// The upstream keeps the connection after this answer.
    keep_alive: bool,
    /// Broken, or closed by the upstream.
    broken: bool,
}

impl Conn {
    pub(super) fn new(io: Io) -> Self {
        Conn {
            io: TokioIo::new(io),
            buf: BytesMut::new(),
            head: Vec::new(),
            body: Body::Done,
            keep_alive: true,
            broken: false,
        }
    }

    /// Writes a request and reads its answer's head (into `headers`,
    /// which held the request's).
    pub(super) async fn send(
        &mut self,
        method: &http::Method,
        path: &str,
        authority: &str,
        headers: &mut http::HeaderMap,
        body: &Pieces,
    ) -> Result<http::response::Parts, SendError> {
        write_head(&mut self.head, method, path, authority, headers, body.len());
        let mut sent = 0;
        let written = poll_fn(|cx| self.poll_write(cx, body, &mut sent)).await;
        if let Err(error) = written {
            self.broken = true;
            return Err(SendError {
                error,
                unsent: sent == 0,
            });
        }
        let to_head = *method == http::Method::HEAD;
        poll_fn(|cx| self.poll_head(cx, headers, to_head))
            .await
            .map_err(|error| {
                self.broken = true;
                SendError {
                    error,
                    unsent: false,
                }
            })
    }

    /// Writes the head and `body` from byte `sent` on.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        body: &Pieces,
        sent: &mut usize,
    ) -> Poll<Result<(), WireError>> {
        let pieces = body.slices();
        let total = self.head.len() as u64 + body.len();
        while (*sent as u64) < total {
            let mut slices = [IoSlice::new(&[]); 8];
            let mut skip = *sent;
            let mut n = 0;
            let parts = std::iter::once(&self.head[..]).chain(pieces.iter().map(|p| &p[..]));
            for part in parts {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
                if n == slices.len() {
                    break;
                }
            }
            let wrote = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?;
            if wrote == 0 {
                return Poll::Ready(Err(WireError::Closed));
            }
            *sent += wrote;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads until an answer's head (not an interim one) is in.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        headers: &mut http::HeaderMap,
        to_head: bool,
    ) -> Poll<Result<http::response::Parts, WireError>> {
        loop {
            if !self.buf.is_empty()
                && let Some(head) = parse_head(&self.buf, headers, to_head)?
            {
                bytes::Buf::advance(&mut self.buf, head.len);
                if head.status.is_informational() {
                    continue;
                }
                self.keep_alive = head.keep_alive;
                self.body = match head.framing {
                    Framing::Empty => Body::Done,
                    Framing::Length(n) => Body::Length(n),
                    Framing::Chunked => Body::Chunked(Chunks::Size),
                    Framing::Close => Body::Close,
                };
                let (mut parts, ()) = http::Response::new(()).into_parts();
                parts.status = head.status;
                parts.version = head.version;
                parts.headers = std::mem::take(headers);
                return Poll::Ready(Ok(parts));
            }
            let max = READ_BUFFER_MAX;
            if self.buf.len() >= max {
                return Poll::Ready(Err(WireError::HeadTooLarge(max)));
            }
            if ready!(self.poll_fill(cx, READ_FIRST))? == 0 {
                return Poll::Ready(Err(WireError::Closed));
            }
        }
    }

    /// Reads once into the buffer (room for `want` more bytes, within the
    /// buffer's bound); `0` when the upstream closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<usize, WireError>> {
        let room = want.clamp(READ_FIRST, READ_BUFFER_MAX);
        if self.buf.capacity() - self.buf.len() < room / 2 {
            self.buf.reserve(room);
        }
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.buf
        ))?;
        Poll::Ready(Ok(n))
    }

    /// The answer's body's next data; `None` at its end.
    pub(super) fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, WireError>>> {
        let polled = self.poll_data_inner(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.broken = true;
            self.body = Body::Done;
        }
        polled
    }

    fn poll_data_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, WireError>>> {
        loop {
            match &mut self.body {
                Body::Done => return Poll::Ready(None),
                Body::Length(left) => {
                    if !self.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(self.buf.len());
                        let data = take(&mut self.buf, n);
                        *left -= n as u64;
                        if *left == 0 {
                            self.body = Body::Done;
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                    let want = usize::try_from(*left).unwrap_or(usize::MAX);
                    if ready!(self.poll_fill(cx, want))? == 0 {
                        return Poll::Ready(Some(Err(WireError::Closed)));
                    }
                }
                Body::Chunked(chunks) => match chunks.step(&mut self.buf)? {
                    Step::Data(data) => return Poll::Ready(Some(Ok(data))),
                    Step::End => self.body = Body::Done,
                    Step::More => {
                        if ready!(self.poll_fill(cx, READ_FIRST))? == 0 {
                            return Poll::Ready(Some(Err(WireError::Closed)));
                        }
                    }
                },
                Body::Close => {
                    if !self.buf.is_empty() {
                        let n = self.buf.len();
                        return Poll::Ready(Some(Ok(take(&mut self.buf, n))));
                    }
                    if ready!(self.poll_fill(cx, READ_FIRST))? == 0 {
                        self.keep_alive = false;
                        self.body = Body::Done;
                    }
                }
            }
        }
    }

    /// The body's length left, when known.
    pub(super) fn size_hint(&self) -> SizeHint {
        match self.body {
            Body::Done => SizeHint::with_exact(0),
            Body::Length(n) => SizeHint::with_exact(n),
            Body::Chunked(_) | Body::Close => SizeHint::default(),
        }
    }

    /// The answer was read to its end.
    pub(super) fn body_done(&self) -> bool {
        matches!(self.body, Body::Done)
    }

    /// Whether another request may go out on it: its answer read to the
    /// end with nothing after it, kept alive by the upstream, not broken.
    pub(super) fn reusable(&mut self) -> bool {
        let ok = !self.broken && self.keep_alive && self.body_done() && self.buf.is_empty();
        if ok && self.buf.capacity() > KEEP_IDLE {
            // A large answer's buffer is not held while idle.
            self.buf = BytesMut::new();
        }
        ok
    }

    /// Polls an idle connection (with `cx`, so its socket wakes the
    /// caller); `false` once the upstream closed it or sent anything
    /// unasked.
    pub(super) fn poll_open(&mut self, cx: &mut Context<'_>) -> bool {
        if self.broken {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        match Pin::new(&mut self.io).poll_read(cx, &mut probe) {
            Poll::Pending => true,
            Poll::Ready(_) => {
                self.broken = true;
                false
            }
        }
    }
}

#[cfg(test)]
#[path = "client_h1_conn_tests.rs"]
mod tests;
