//! A client's embeddings body read without a tree: what routing and the
//! pass-through need, every byte checked, the bytes kept.
//!
//! Place in the pipeline: behind `api::embeddings` (its parent); `server`'s
//! embeddings endpoint reads a client body with [`EmbeddingsBody::parse`].
//! A body whose `input` is an array of strings is walked with
//! `json_check`'s cursor, which checks every value and accepts nothing the
//! full parse refuses; [`ClientBody`] keeps the bytes and where `model`'s
//! value and each input sit. When the answer may be the upstream's and one
//! call takes every input, an OpenAI-wire provider sends the client's own
//! bytes with only `model` spliced in ([`ClientBody::upstream`]): 2,048
//! inputs are neither parsed into values nor written again. Anything else
//! gets the values the whole parse would give, built from what the walk
//! found ([`ClientBody::parse`]). Must not decide errors:
//! on anything doubtful (token ids, a duplicate or escaped top-level key,
//! an `encoding_format` or `dimensions` it does not vouch for) the walk
//! says `None` and the full parse words the answer.

use std::ops::Range;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{EmbeddingsRequest, EncodingFormat};
use crate::api::GatewayError;
use crate::api::json_check::Cursor;

/// Top-level keys the walk follows (more: the full parse).
const MAX_KEYS: usize = 16;

/// A client's embeddings request: its bytes, kept as they came.
#[derive(Debug, Clone)]
pub struct ClientBody {
    bytes: Bytes,
    /// `model`, read as the full parse reads it.
    pub model: String,
    /// Where `model`'s value (a JSON string, quotes included) sits.
    model_span: Range<usize>,
    /// Where each input (a JSON string, quotes included) sits.
    inputs: Vec<Range<usize>>,
    /// The client's `encoding_format` (`float` when it gave none).
    pub format: EncodingFormat,
    /// The client gave no `encoding_format`: `"float"` is said on the way
    /// out, as a body written anew says it.
    add_format: bool,
    /// Where the `}` closing the body is.
    close: usize,
    /// Every other member: where its key (inside the quotes) and its value
    /// sit.
    others: Vec<(Range<usize>, Range<usize>)>,
}

/// A client's embeddings request as the endpoint got it.
#[derive(Debug)]
pub enum EmbeddingsBody {
    /// Walked, not parsed (see [`ClientBody`]).
    Raw(ClientBody),
    /// Parsed whole: what the walk does not vouch for.
    Parsed(EmbeddingsRequest),
}

impl EmbeddingsBody {
    /// Walks `raw`, else parses it whole (which words every error).
    pub fn parse(raw: &Bytes) -> Result<Self, GatewayError> {
        match scan(raw) {
            Some(body) => Ok(EmbeddingsBody::Raw(body)),
            None => EmbeddingsRequest::parse(raw).map(EmbeddingsBody::Parsed),
        }
    }

    pub fn model(&self) -> &str {
        match self {
            EmbeddingsBody::Raw(b) => &b.model,
            EmbeddingsBody::Parsed(r) => &r.model,
        }
    }
}

impl ClientBody {
    /// How many inputs it holds.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Input `i`'s JSON text (a string, quotes included, as the client
    /// wrote it).
    pub fn input(&self, i: usize) -> &[u8] {
        &self.bytes[self.inputs[i].clone()]
    }

    /// Every input's JSON text, in order.
    pub fn inputs(&self) -> impl Iterator<Item = &[u8]> {
        self.inputs.iter().map(|r| &self.bytes[r.clone()])
    }

    /// The request as values, for what needs them (the per-item flow, a
    /// kind that translates): what the whole parse of the same bytes
    /// gives, built from what the walk found (a plain input's text taken as
    /// it is, an escaped one and every other member's value read alone),
    /// so a cached request is not read twice over.
    pub fn parse(&self) -> Result<EmbeddingsRequest, GatewayError> {
        match self.values() {
            Some(request) => Ok(request),
            // Cannot happen (the walk checked every byte); the whole
            // parse words whatever it would be.
            None => EmbeddingsRequest::parse(&self.bytes),
        }
    }

    fn values(&self) -> Option<EmbeddingsRequest> {
        let b = &self.bytes[..];
        let inputs = self
            .inputs
            .iter()
            .map(|r| {
                let inside = &b[r.start + 1..r.end - 1];
                match memchr::memchr(b'\\', inside) {
                    None => Some(Value::String(std::str::from_utf8(inside).ok()?.to_owned())),
                    Some(_) => serde_json::from_slice(&b[r.clone()]).ok(),
                }
            })
            .collect::<Option<Vec<Value>>>()?;
        let mut extra = Map::new();
        for (key, value) in &self.others {
            let key = std::str::from_utf8(&b[key.clone()]).ok()?;
            extra.insert(
                key.to_owned(),
                serde_json::from_slice(&b[value.clone()]).ok()?,
            );
        }
        Some(EmbeddingsRequest {
            model: self.model.clone(),
            inputs,
            encoding_format: self.format,
            extra,
        })
    }

    /// The body to send upstream for `model`: the client's bytes around the
    /// new `model` (and `"encoding_format":"float"` before the closing `}`
    /// when the client gave none), as pieces sent one after the other; no
    /// input is copied.
    pub fn upstream(&self, model: &str) -> Vec<Bytes> {
        let b = &self.bytes;
        let mut name = Vec::with_capacity(model.len() + 2);
        crate::api::json_write::write_str(&mut name, model);
        let mut parts = vec![b.slice(..self.model_span.start), Bytes::from(name)];
        if self.add_format {
            parts.extend([
                b.slice(self.model_span.end..self.close),
                Bytes::from_static(br#","encoding_format":"float""#),
                b.slice(self.close..),
            ]);
        } else {
            parts.push(b.slice(self.model_span.end..));
        }
        parts.retain(|p| !p.is_empty());
        parts
    }
}

/// Reads an embeddings body whose `input` is an array of strings,
/// validating all of it; `None` for anything else (see the module doc).
pub(super) fn scan(raw: &Bytes) -> Option<ClientBody> {
    let mut c = Cursor::new(&raw[..]);
    c.ws();
    c.eat(b'{')?;
    c.ws();
    let (mut keys, mut count) = ([&b""[..]; MAX_KEYS], 0);
    let (mut model, mut inputs, mut format) = (None, None, None);
    let mut others = Vec::new();
    while c.peek()? != b'}' {
        let key = c.key()?;
        // Where the key sits (`key` is a slice of `raw`).
        let at = key.as_ptr() as usize - raw.as_ptr() as usize;
        let key_span = at..at + key.len();
        if count == MAX_KEYS || keys[..count].contains(&key) {
            return None;
        }
        keys[count] = key;
        count += 1;
        match key {
            b"model" => {
                let span = c.string()?;
                // As strictly as the full parse reads it (escapes).
                let name: String = serde_json::from_slice(&raw[span.clone()]).ok()?;
                if name.is_empty() {
                    return None;
                }
                model = Some((name, span));
            }
            b"input" => inputs = Some(strings(&mut c)?),
            b"encoding_format" => {
                let span = c.value()?;
                format = Some(match &raw[span] {
                    br#""float""# => EncodingFormat::Float,
                    br#""base64""# => EncodingFormat::Base64,
                    _ => return None,
                });
            }
            // A positive integer in plain digits (the byte after it is
            // checked below: `2.5` or `2e3` stop the walk).
            b"dimensions" => {
                let start = c.at;
                if c.unsigned()? == 0 {
                    return None;
                }
                others.push((key_span, start..c.at));
            }
            _ => others.push((key_span, c.value()?)),
        }
        c.after_member()?;
    }
    let close = c.at;
    c.eat(b'}')?;
    if !c.at_end() {
        return None;
    }
    let (model, model_span) = model?;
    Some(ClientBody {
        bytes: raw.clone(),
        model,
        model_span,
        inputs: inputs?,
        format: format.unwrap_or(EncodingFormat::Float),
        add_format: format.is_none(),
        close,
        others,
    })
}

/// `input` as a non-empty array of non-empty strings: where each sits. (A
/// lone string is parsed whole: it goes upstream as an array of one, as
/// it always has.)
fn strings(c: &mut Cursor<'_>) -> Option<Vec<Range<usize>>> {
    let string = |c: &mut Cursor<'_>| {
        // `""`: the full parse refuses an empty input. (The string scan
        // straight away: inputs are seldom as short as keys.)
        c.string().filter(|s| s.len() > 2)
    };
    c.eat(b'[')?;
    c.ws();
    let mut items = Vec::new();
    loop {
        items.push(string(c)?);
        c.ws();
        match c.next()? {
            b',' => c.ws(),
            b']' => return Some(items),
            _ => return None,
        }
    }
}

#[cfg(test)]
#[path = "embeddings_body_tests.rs"]
mod tests;
