//! A body gathered from the pieces it arrives in.
//!
//! Place in the pipeline: a leaf, used where a client's whole request body
//! is read before it is looked at (`server::http::read_body`). A body that
//! came in one piece (a chat request, nearly always) stays that piece: no
//! allocation and no copy, which at hundreds of requests in flight is a
//! copy into memory not in the core's caches (cache-simulated last-level
//! misses per request at c=512: 454 -> 442 and 459 -> 434). Pieces after
//! the first go into one buffer, sized once. Upstream answers are still
//! copied (`providers::body`): keeping their piece pinned the upstream
//! connection's read buffer, and the misses did not fall (docs/benchmarks.md,
//! stop 37). Must not look at the bytes or bound them.

use bytes::{Bytes, BytesMut};

/// The pieces so far: the first alone, or all of them in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Gather {
    first: Option<Bytes>,
    joined: BytesMut,
    /// The size to make the buffer when a second piece comes (the
    /// declared length, when there is one).
    expected: usize,
}

impl Gather {
    /// Expecting `expected` bytes in all (0 when unknown).
    pub(crate) fn expecting(expected: usize) -> Self {
        Gather {
            expected,
            ..Gather::default()
        }
    }

    /// Adds the next piece.
    pub(crate) fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(piece),
            Some(first) => {
                let room = self.expected.max(first.len() + piece.len());
                self.joined.reserve(room);
                self.joined.extend_from_slice(&first);
                self.joined.extend_from_slice(&piece);
            }
            None => self.joined.extend_from_slice(&piece),
        }
    }

    /// The body.
    pub(crate) fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.joined.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_piece_stays_itself_and_more_are_joined_in_order() {
        let one = Bytes::from_static(b"{\"a\":1}");
        let mut g = Gather::expecting(7);
        g.push(Bytes::new());
        g.push(one.clone());
        let body = g.finish();
        assert_eq!(&body[..], b"{\"a\":1}");
        assert_eq!(body.as_ptr(), one.as_ptr(), "no copy of a single piece");

        let mut g = Gather::expecting(0);
        for piece in ["{\"a\"", ":", "", "1}"] {
            g.push(Bytes::copy_from_slice(piece.as_bytes()));
        }
        assert_eq!(&g.finish()[..], b"{\"a\":1}");
        assert!(Gather::default().finish().is_empty());
    }
}
