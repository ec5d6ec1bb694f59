//! An upstream request's body in pieces: `Bytes` sent one after the
//! other with their exact length, never joined into one buffer.
//!
//! Place in the pipeline: built by the providers (a request body, a large
//! client body with `model` spliced in as slices of the client's bytes) and
//! by the embeddings endpoint (a pass-through answer around a new `model`);
//! sent by `client` and its plain HTTP/1 connections. Must not copy a
//! piece.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// A body of `Bytes` pieces sent one after the other, with its exact
/// length (`Content-Length`), never copied into one buffer: an upstream
/// request's body (one buffer, or a large client body with `model`
/// spliced in, as slices of the client's own bytes), and the gateway's
/// own pass-through embedding answer (the upstream's bytes around a new
/// `model`).
#[derive(Debug)]
pub struct Pieces {
    parts: std::vec::IntoIter<Bytes>,
    left: u64,
}

impl Pieces {
    pub fn empty() -> Self {
        Pieces::parts(Vec::new())
    }

    pub fn parts(parts: Vec<Bytes>) -> Self {
        let left = parts.iter().map(|p| p.len() as u64).sum();
        Pieces {
            parts: parts.into_iter(),
            left,
        }
    }

    /// Its length in bytes (what is left of it to send).
    pub fn len(&self) -> u64 {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The pieces left to send.
    pub(super) fn slices(&self) -> &[Bytes] {
        self.parts.as_slice()
    }

    /// The body when it is one buffer (for unit tests of what is sent).
    #[cfg(test)]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl From<Bytes> for Pieces {
    fn from(b: Bytes) -> Self {
        Pieces::parts(vec![b])
    }
}

impl From<Vec<u8>> for Pieces {
    fn from(b: Vec<u8>) -> Self {
        Bytes::from(b).into()
    }
}

impl From<String> for Pieces {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.next();
        if let Some(p) = &next {
            self.left -= p.len() as u64;
        }
        Poll::Ready(next.map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
