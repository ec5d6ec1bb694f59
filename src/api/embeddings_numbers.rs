//! The bytes a vector of an embeddings answer may hold, checked a block
//! at a time without reading a number.
//!
//! Place in the pipeline: under `embeddings_raw` (its parent), whose walk
//! of a passed-through answer jumps over each `embedding` array with
//! [`numbers`]: some 2.9 MB of a 2,048-vector answer, most of the walk's
//! bytes. Must not take a byte no list of JSON numbers holds but `/`
//! (taken for speed: no number holds it, and the walk refuses what
//! follows); what the numbers say is the client's to read.

/// How many bytes at the start of `b` may be part of a list of numbers
/// (digits, `+-.eE`, `,`, white space; `/` too, for speed, which a
/// number never holds and the next byte then refuses). A block at a time,
/// in a form the compiler checks several bytes of at once: first without
/// white space (a compact answer passes at twice the speed; a block
/// without `e` or `E` faster still), and from the first block that holds
/// some on, with it.
pub(super) fn numbers(b: &[u8]) -> usize {
    /// 1 for a byte no compact list of numbers holds.
    #[inline(always)]
    fn not_compact(x: u8) -> u8 {
        (x.wrapping_sub(b'+') > b'9' - b'+') as u8 & (x | 0x20 != b'e') as u8
    }
    /// 1 for a byte no list of numbers holds.
    #[inline(always)]
    fn bad(x: u8) -> u8 {
        not_compact(x)
            & (x != b' ') as u8
            & (x != b'\n') as u8
            & (x != b'\r') as u8
            & (x != b'\t') as u8
    }
    const BLOCK: usize = 64;
    let (mut at, mut spaced) = (0, false);
    for block in b.chunks_exact(BLOCK) {
        if !spaced {
            // Digits and `+,-./` alone (most blocks): a subtraction and a
            // saturating one per byte, no comparison (a third less work
            // over a 2,048-vector answer than `not_compact` alone).
            if block.iter().fold(0, |any, &x| {
                any | x.wrapping_sub(b'+').saturating_sub(b'9' - b'+')
            }) == 0
            {
                at += BLOCK;
                continue;
            }
            if block.iter().fold(0, |any, &x| any | not_compact(x)) == 0 {
                at += BLOCK;
                continue;
            }
            spaced = true;
        }
        if block.iter().fold(0, |any, &x| any | bad(x)) != 0 {
            break;
        }
        at += BLOCK;
    }
    let rest = &b[at..];
    at + rest.iter().position(|&x| bad(x) != 0).unwrap_or(rest.len())
}
