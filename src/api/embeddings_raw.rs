//! An upstream's embeddings answer passed through as it came: checked by a
//! scan of its bytes, its `usage` read, only its `model` rewritten.
//!
//! Place in the pipeline: behind `api::embeddings` (its parent). A provider
//! that was asked for the client's own encoding hands the answer's chunks,
//! as they arrive, to a [`Prescan`] (`embeddings_prescan`), which keeps
//! them as they came (`embeddings_rope`); the endpoint sends
//! [`RawEmbed::into_parts`], slices of those chunks around a new `model`.
//! A 2,048-input answer is megabytes of numbers:
//! the scan walks the answer's structure (the top-level object, each item
//! of `data`, their keys) with `json_check`'s cursor, which checks every
//! other value as JSON, but only checks that a vector holds nothing but the
//! bytes numbers are made of (a base64 one: a string without escapes),
//! without reading a number. Must refuse (the whole answer in one buffer
//! instead, so the caller parses it as before and names any fault)
//! anything but a JSON
//! object with `data` (`expected` items, each with `index` equal to its
//! place and an `embedding` in the asked encoding), a `usage` object and no
//! `error`; must never change a byte outside the `model` value.

use bytes::Bytes;
use serde_json::ser::Formatter;

use rope::Rope;

#[path = "embeddings_numbers.rs"]
mod numbers;
#[path = "embeddings_prescan.rs"]
mod prescan;
#[path = "embeddings_rope.rs"]
mod rope;

pub use prescan::Prescan;

/// An answer the client may have as the upstream wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEmbed {
    /// The answer, in the pieces it came in.
    body: Rope,
    /// Where the top-level `model` value is (start, end); `None`: the
    /// answer has none (one is added).
    model: Option<(usize, usize)>,
    /// The inside of the `data` array (between `[` and `]`).
    items: (usize, usize),
    /// Where each item's `index` number is, in order.
    indexes: Vec<(usize, usize)>,
    /// How many vectors the answer holds.
    pub count: usize,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

impl RawEmbed {
    /// The answer as the upstream wrote it, in one buffer.
    pub fn to_bytes(&self) -> Bytes {
        self.body.to_bytes()
    }

    /// The answer with its `model` set to `model` (a JSON string in place
    /// of the upstream's value; added first when it had none), as pieces
    /// to send one after the other: the upstream's bytes are not copied.
    pub fn into_parts(self, model: &str) -> Vec<Bytes> {
        let mut name = serde_json::to_vec(model).unwrap_or_else(|_| b"\"\"".to_vec());
        let b = &self.body;
        let (before, after) = match self.model {
            Some((start, end)) => (start, end),
            None => {
                // The answer opens with `{` (after any white space).
                let (mut open, mut seen) = (0, 0);
                for p in b.tail(0) {
                    if let Some(i) = memchr::memchr(b'{', &p) {
                        open = seen + i + 1;
                        break;
                    }
                    seen += p.len();
                }
                let mut field = b"\"model\":".to_vec();
                field.append(&mut name);
                field.push(b',');
                name = field;
                (open, open)
            }
        };
        let mut parts = b.slice(0..before);
        parts.push(Bytes::from(name));
        parts.extend(b.slice(after..b.len()));
        parts
    }
}

/// The answers of consecutive sub-batches as one: their `data` items as
/// they came, in order, each `index` shifted by the inputs before its
/// sub-batch; `model` set to `model`; `usage` summed.
pub fn join(parts: &[RawEmbed], model: &str) -> Vec<u8> {
    let items: usize = parts.iter().map(|p| p.items.1 - p.items.0 + 8).sum();
    let mut out = Vec::with_capacity(items + model.len() + 128);
    let mut f = serde_json::ser::CompactFormatter;
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    let (mut offset, mut prompt, mut total) = (0, 0, 0);
    for (k, p) in parts.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        let mut at = p.items.0;
        for (i, &(start, end)) in p.indexes.iter().enumerate() {
            p.body.copy_into(at..start, &mut out);
            let _ = f.write_u64(&mut out, (offset + i) as u64);
            at = end;
        }
        p.body.copy_into(at..p.items.1, &mut out);
        offset += p.count;
        prompt += p.prompt_tokens;
        total += p.total_tokens;
    }
    out.extend_from_slice(b"],\"model\":");
    let _ = serde_json::to_writer(&mut out, model);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    let _ = f.write_u64(&mut out, prompt);
    out.extend_from_slice(b",\"total_tokens\":");
    let _ = f.write_u64(&mut out, total);
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
#[path = "embeddings_raw_tests.rs"]
mod tests;
