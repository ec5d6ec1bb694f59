//! The fast part of a JSON string's check: how far a string's bytes run
//! with nothing to look at (no `"`, `\` or control byte), eight bytes at
//! a time and then a block at a time, and whether any of them is above
//! 0x7f (the caller then checks the run as UTF-8).
//!
//! Place in the pipeline: behind `json_check` (its parent), whose string
//! scan calls [`plain_run`] for every string of a chat body, of an
//! embeddings request and of an answer passed through. Must stop at the
//! first byte that needs a look, never past it.

/// Bytes a string's fast loop looks at together: a form the compiler
/// checks as vectors.
const BLOCK: usize = 64;
/// Bytes a string's scan looks at eight at a time before the blocks: a
/// string shorter than this (an embeddings input of a few words) ends
/// before a block is looked at in vain.
const WORDS: usize = 32;

/// How many bytes at the start of `b` a string holds as they are (no `"`,
/// `\` or control byte), and 0x80 if any of them is above 0x7f (else 0):
/// eight bytes at a time at first (keys and short values end there), then
/// a block at a time, then eight bytes at a time again to find the end in
/// its block, then byte by byte for the last few.
#[inline]
pub(super) fn plain_run(b: &[u8]) -> (usize, u8) {
    #[inline(always)]
    fn stop(x: u8) -> u8 {
        (x == b'"') as u8 | (x == b'\\') as u8 | (x < 0x20) as u8
    }
    let mut high = 0u64;
    let mut at = match by_words(b, 0, WORDS, &mut high) {
        Ok(at) => at,
        Err(end) => return end,
    };
    if at == WORDS {
        for block in b[at..].chunks_exact(BLOCK) {
            let (mut s, mut h) = (0u8, 0u8);
            for &x in block {
                s |= stop(x);
                h |= x;
            }
            if s != 0 {
                break;
            }
            high |= u64::from(h & 0x80);
            at += BLOCK;
        }
    }
    let mut at = match by_words(b, at, b.len(), &mut high) {
        Ok(at) => at,
        Err(end) => return end,
    };
    for &x in &b[at..] {
        if stop(x) != 0 {
            break;
        }
        high |= u64::from(x & 0x80);
        at += 1;
    }
    (at, if high != 0 { 0x80 } else { 0 })
}

/// Each byte's top bit.
const HIGH: u64 = 0x8080_8080_8080_8080;
/// 1 in each byte.
const ONES: u64 = 0x0101_0101_0101_0101;

/// [`plain_run`] eight bytes at a time from `at`, while a whole word is
/// left before `until`: where it stopped, or (`Err`) `plain_run`'s answer
/// when a word holds the run's end. `high` gathers the top bits passed.
#[inline(always)]
fn by_words(b: &[u8], mut at: usize, until: usize, high: &mut u64) -> Result<usize, (usize, u8)> {
    while at < until
        && let Some(w) = word_at(b, at)
    {
        match stops(w) {
            0 => {
                *high |= w & HIGH;
                at += 8;
            }
            marks => return Err(word_end(w, marks, at, *high)),
        }
    }
    Ok(at)
}

/// The eight bytes of `b` from `at`, first byte lowest.
#[inline(always)]
fn word_at(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The top bit set in each byte of `w` that is `"`, `\` or below 0x20;
/// exact for the lowest such byte (bytes above it may be marked too, by a
/// borrow), which is all [`word_end`] reads.
#[inline(always)]
fn stops(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space
}

/// [`plain_run`]'s answer when the word `w` at `at` holds the run's end
/// (`marks`, from [`stops`]).
#[inline(always)]
fn word_end(w: u64, marks: u64, at: usize, high: u64) -> (usize, u8) {
    let n = (marks.trailing_zeros() / 8) as usize;
    let before = w & ((1u64 << (8 * n)) - 1);
    let high = high | (before & HIGH);
    (at + n, if high != 0 { 0x80 } else { 0 })
}
