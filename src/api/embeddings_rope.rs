//! An answer kept as the pieces it arrived in: read, sliced and sent
//! without being copied into one buffer.
//!
//! Place in the pipeline: behind `embeddings_raw` (its parent), which keeps
//! a passed-through embeddings answer (megabytes, in the pieces the
//! upstream connection gave) in one and sends slices of it around a new
//! `model`. Must not copy a piece except where asked for one buffer
//! ([`Rope::to_bytes`], [`Rope::copy_into`]).

use std::ops::Range;

use bytes::Bytes;

/// Bytes in pieces, in order.
#[derive(Debug, Clone, Default)]
pub(super) struct Rope {
    pieces: Vec<Bytes>,
    len: usize,
}

impl Rope {
    pub(super) fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.pieces.push(piece);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The bytes in `range`, as slices of the pieces (no copy).
    pub(super) fn slice(&self, range: Range<usize>) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut start = 0;
        for p in &self.pieces {
            let end = start + p.len();
            let (a, b) = (range.start.max(start), range.end.min(end));
            if a < b {
                out.push(p.slice(a - start..b - start));
            }
            if end >= range.end {
                break;
            }
            start = end;
        }
        out
    }

    /// The bytes in `range`, appended to `out`.
    pub(super) fn copy_into(&self, range: Range<usize>, out: &mut Vec<u8>) {
        for p in self.slice(range) {
            out.extend_from_slice(&p);
        }
    }

    /// The bytes from `at` on, piece by piece.
    pub(super) fn tail(&self, at: usize) -> impl Iterator<Item = Bytes> {
        self.slice(at..self.len).into_iter()
    }

    /// All of it as one buffer: a single piece as it is, more copied.
    pub(super) fn to_bytes(&self) -> Bytes {
        match &self.pieces[..] {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        }
    }
}

/// Two ropes are equal when their bytes are, however they are cut.
impl PartialEq for Rope {
    fn eq(&self, other: &Rope) -> bool {
        self.len == other.len && self.to_bytes() == other.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_the_bytes_however_the_rope_is_cut() {
        let text: Vec<u8> = (0..40u8).collect();
        for cuts in [vec![], vec![1], vec![7, 8, 20], vec![0, 39, 40]] {
            let mut rope = Rope::default();
            let mut at = 0;
            for &c in cuts.iter().chain([&40]) {
                rope.push(Bytes::copy_from_slice(&text[at..c]));
                at = c;
            }
            assert_eq!(rope.len(), 40);
            assert_eq!(rope.to_bytes(), text);
            for a in 0..=40 {
                for b in a..=40 {
                    assert_eq!(rope.slice(a..b).concat(), text[a..b], "{cuts:?} {a}..{b}");
                    assert!(rope.slice(a..b).iter().all(|p| !p.is_empty()));
                    let mut out = vec![9];
                    rope.copy_into(a..b, &mut out);
                    assert_eq!(out[1..], text[a..b]);
                }
                assert_eq!(rope.tail(a).collect::<Vec<_>>().concat(), text[a..]);
            }
        }
    }
}
