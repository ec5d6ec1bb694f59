//! A chat request's body: the client's bytes, what routing reads of them,
//! and the parsed tree only when something needs it.
//!
//! Place in the pipeline: `api::chat::ChatRequest` holds one. Parsing a
//! client body ([`scan`]) validates all of it exactly as a full
//! `serde_json` parse would (same parser, every value visited) but keeps no
//! tree: it reads `model` (and where its value sits in the bytes), `stream`,
//! the shape of `messages`, and the few fields estimates and providers ask
//! about. An OpenAI-compatible target then gets the client's own bytes with
//! only `model` spliced in ([`ChatBody::with_model`]); a feature that needs
//! the tree (translation to another kind, the cache key, a continuation,
//! an edit the splice cannot do) gets it through `Deref`, parsed once per
//! request and kept. Anything the scan is unsure of (a duplicate or escaped
//! top-level key, an invalid body) falls back to the full parse, so errors
//! are today's, word for word. Must not interpret fields beyond that.

use std::fmt;
use std::ops::{Deref, DerefMut, Range};
use std::sync::OnceLock;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The body of a chat request: the client's bytes (with what [`scan`]
/// read of them) until something edits the tree, else the tree alone.
#[derive(Clone)]
pub struct ChatBody {
    raw: Option<Raw>,
    tree: OnceLock<Map<String, Value>>,
}

#[derive(Clone)]
struct Raw {
    bytes: Bytes,
    head: Head,
    /// `"stream_options":{"include_usage":true}` is added on the way out
    /// (the client sent no `stream_options`).
    add_usage: bool,
}

/// What [`scan`] read of a body, with the semantics of the same reads on
/// the parsed tree (`Value::as_u64`, `as_bool`, `as_str`).
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub model: String,
    /// Where `model`'s value (a JSON string, quotes included) sits.
    model_span: Range<usize>,
    pub stream: bool,
    /// `store: true`.
    pub store: bool,
    /// `max_completion_tokens`, `max_tokens`, `max_output_tokens`.
    bounds: [Option<u64>; 3],
    n: Option<u64>,
    stream_options: Opts,
    pub reasoning_effort: Option<String>,
    pub top_k: Option<u64>,
}

/// The client's `stream_options`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Opts {
    #[default]
    Absent,
    Null,
    Object {
        include_usage: bool,
    },
    /// Anything else: left alone (the upstream judges it).
    Other,
}

impl Head {
    /// As `estimate::max_output_tokens` reads the tree.
    pub fn max_output_tokens(&self) -> u64 {
        let bound = self.bounds.iter().find_map(|b| *b).unwrap_or(0);
        bound.saturating_mul(self.n.unwrap_or(1).max(1))
    }
}

impl From<Map<String, Value>> for ChatBody {
    fn from(tree: Map<String, Value>) -> Self {
        ChatBody {
            raw: None,
            tree: OnceLock::from(tree),
        }
    }
}

impl ChatBody {
    /// The client's bytes, as [`scan`] read them.
    pub fn from_raw(bytes: Bytes, head: Head) -> Self {
        ChatBody {
            raw: Some(Raw {
                bytes,
                head,
                add_usage: false,
            }),
            tree: OnceLock::new(),
        }
    }

    /// What the scan read, while the client's bytes are what is sent.
    pub fn head(&self) -> Option<&Head> {
        self.raw.as_ref().map(|r| &r.head)
    }

    /// Whether the tree was built (tests: the pass-through path never
    /// builds it).
    pub fn is_parsed(&self) -> bool {
        self.tree.get().is_some()
    }

    /// The tree, by value.
    pub fn into_map(mut self) -> Map<String, Value> {
        std::mem::take(&mut *self)
    }

    /// `stream_options.include_usage`, as sent (see `chat::include_usage`).
    pub fn include_usage(&self) -> bool {
        match &self.raw {
            Some(r) => {
                r.add_usage
                    || r.head.stream_options
                        == Opts::Object {
                            include_usage: true,
                        }
            }
            None => super::chat::include_usage(self),
        }
    }

    /// Asks the upstream for a usage chunk, as `chat::ask_for_usage` does
    /// on the tree: on the bytes when the client sent no `stream_options`
    /// (or already asked), on the tree otherwise.
    pub fn ask_for_usage(&mut self) {
        let Some(r) = &mut self.raw else {
            return super::chat::ask_for_usage(self);
        };
        match r.head.stream_options {
            Opts::Absent => r.add_usage = true,
            Opts::Object {
                include_usage: true,
            }
            | Opts::Other => {}
            Opts::Null | Opts::Object { .. } => super::chat::ask_for_usage(self),
        }
    }

    /// The client's bytes with `model`'s value replaced (and the usage
    /// request added), in one allocation; `None` once the tree is what is
    /// sent.
    pub fn with_model(&self, model: &str) -> Option<Bytes> {
        let r = self.raw.as_ref()?;
        let (b, span) = (&r.bytes[..], r.head.model_span.clone());
        let mut out = Vec::with_capacity(b.len() + model.len() + 48);
        out.extend_from_slice(&b[..span.start]);
        super::json_write::write_str(&mut out, model);
        // The scan proved the body one object: its last `}` closes it.
        let close = match r.add_usage {
            true => b
                .iter()
                .rposition(|&c| c == b'}')
                .filter(|c| *c >= span.end),
            false => None,
        };
        match close {
            Some(close) => {
                out.extend_from_slice(&b[span.end..close]);
                out.extend_from_slice(br#","stream_options":{"include_usage":true}"#);
                out.extend_from_slice(&b[close..]);
            }
            None => out.extend_from_slice(&b[span.end..]),
        }
        Some(Bytes::from(out))
    }

    /// [`ChatBody::with_model`] as the pieces it is made of: slices of the
    /// client's bytes around the new `model` (and the usage request), no
    /// copy of the body.
    pub fn with_model_parts(&self, model: &str) -> Option<Vec<Bytes>> {
        let r = self.raw.as_ref()?;
        let (b, span) = (&r.bytes, r.head.model_span.clone());
        let mut name = Vec::with_capacity(model.len() + 2);
        super::json_write::write_str(&mut name, model);
        let close = match r.add_usage {
            true => b
                .iter()
                .rposition(|&c| c == b'}')
                .filter(|c| *c >= span.end),
            false => None,
        };
        let mut parts = vec![b.slice(..span.start), Bytes::from(name)];
        match close {
            Some(close) => parts.extend([
                b.slice(span.end..close),
                Bytes::from_static(br#","stream_options":{"include_usage":true}"#),
                b.slice(close..),
            ]),
            None => parts.push(b.slice(span.end..)),
        }
        parts.retain(|p| !p.is_empty());
        Some(parts)
    }

    fn build_tree(&self) -> Map<String, Value> {
        let Some(r) = &self.raw else {
            return Map::new();
        };
        // Cannot fail: the scan accepted the same bytes with the same parser.
        let mut tree: Map<String, Value> = serde_json::from_slice(&r.bytes).unwrap_or_default();
        if r.add_usage {
            super::chat::ask_for_usage(&mut tree);
        }
        tree
    }
}

/// The tree, parsed from the client's bytes on first use (once per
/// request: attempts share the request).
impl Deref for ChatBody {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        self.tree.get_or_init(|| self.build_tree())
    }
}

/// Editing the tree makes it what is sent: the client's bytes are dropped.
impl DerefMut for ChatBody {
    fn deref_mut(&mut self) -> &mut Map<String, Value> {
        let tree = self.tree.take().unwrap_or_else(|| self.build_tree());
        self.raw = None;
        self.tree = OnceLock::from(tree);
        self.tree.get_mut().expect("set on the line above")
    }
}

impl fmt::Debug for ChatBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatBody")
            .field("raw_bytes", &self.raw.as_ref().map(|r| r.bytes.len()))
            .field("parsed", &self.is_parsed())
            .finish()
    }
}

/// Reads what routing needs of a chat body, validating all of it; `None`
/// when the body is not a valid chat request as the full parse judges it,
/// or when the bytes cannot be sent as they are (a duplicate or escaped
/// top-level key): the caller parses fully, which gives today's answer.
pub fn scan(raw: &[u8]) -> Option<Head> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let top = TopSeed {
        base: raw.as_ptr() as usize,
    };
    let head = top.deserialize(&mut de).ok()?;
    de.end().ok()?;
    (!head.model.is_empty()).then_some(head)
}

/// More top-level keys than this: the full parse (duplicates are checked
/// on a stack array).
const MAX_KEYS: usize = 64;

/// The output bounds, in the order `estimate::max_output_tokens` reads
/// them.
const BOUNDS: [&str; 3] = ["max_completion_tokens", "max_tokens", "max_output_tokens"];

struct TopSeed {
    base: usize,
}

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Head;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Head, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        let (mut keys, mut count) = ([""; MAX_KEYS], 0);
        let mut messages = false;
        let mut model = false;
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            if count == MAX_KEYS || keys[..count].contains(&key) {
                return Err(de::Error::custom("to the full parse"));
            }
            keys[count] = key;
            count += 1;
            match (key, BOUNDS.iter().position(|b| *b == key)) {
                ("model", _) => {
                    let v: &'de RawValue = map.next_value()?;
                    let s = v.get();
                    // The string itself, as strictly as the full parse
                    // reads it (escapes, surrogates).
                    head.model = match s.starts_with('"') {
                        true => serde_json::from_str(s).map_err(de::Error::custom)?,
                        false => return Err(de::Error::custom("not a string")),
                    };
                    let start = s.as_ptr() as usize - self.base;
                    head.model_span = start..start + s.len();
                    model = true;
                }
                ("messages", _) => messages = map.next_value_seed(NonEmptyArray)?,
                ("stream", _) => {
                    head.stream = match map.next_value()? {
                        Peek::Null => false,
                        Peek::Bool(b) => b,
                        _ => return Err(de::Error::custom("not a boolean")),
                    }
                }
                ("store", _) => head.store = matches!(map.next_value()?, Peek::Bool(true)),
                ("n", _) => head.n = map.next_value::<Peek>()?.u64(),
                ("top_k", _) => head.top_k = map.next_value::<Peek>()?.u64(),
                ("reasoning_effort", _) => {
                    head.reasoning_effort = match map.next_value()? {
                        Peek::Str(s) => Some(s),
                        _ => None,
                    }
                }
                ("stream_options", _) => head.stream_options = map.next_value_seed(OptsSeed)?,
                (_, Some(k)) => head.bounds[k] = map.next_value::<Peek>()?.u64(),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        if !(model && messages) {
            return Err(de::Error::custom("to the full parse"));
        }
        Ok(head)
    }
}

/// A top-level key as it is in the bytes (an escaped one is refused).
struct BorrowedKey;

impl<'de> DeserializeSeed<'de> for BorrowedKey {
    type Value = &'de str;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<&'de str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BorrowedKey {
    type Value = &'de str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<&'de str, E> {
        Ok(v)
    }
}

/// A value, validated, with the scalars routing reads.
enum Peek {
    Null,
    Bool(bool),
    U64(u64),
    Str(String),
    Other,
}

impl Peek {
    fn u64(self) -> Option<u64> {
        match self {
            Peek::U64(v) => Some(v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Peek {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Peek, D::Error> {
        d.deserialize_any(PeekVisitor)
    }
}

struct PeekVisitor;

impl<'de> Visitor<'de> for PeekVisitor {
    type Value = Peek;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Peek, E> {
        Ok(Peek::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Peek, E> {
        Ok(Peek::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Peek, E> {
        Ok(Peek::U64(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Peek, E> {
        Ok(Peek::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Peek, E> {
        Ok(Peek::Other)
    }
    fn visit_str<E>(self, v: &str) -> Result<Peek, E> {
        Ok(Peek::Str(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Peek, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Peek::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Peek, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Peek::Other)
    }
}

/// `stream_options`: whether it is an object with `include_usage: true`
/// (the last member of that name wins, as in the tree).
struct OptsSeed;

impl<'de> DeserializeSeed<'de> for OptsSeed {
    type Value = Opts;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Opts, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OptsSeed {
    type Value = Opts;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Opts, A::Error> {
        let mut include_usage = false;
        while let Some(key) = map.next_key::<Peek>()? {
            let value: Peek = map.next_value()?;
            if matches!(&key, Peek::Str(k) if k == "include_usage") {
                include_usage = matches!(value, Peek::Bool(true));
            }
        }
        Ok(Opts::Object { include_usage })
    }
    fn visit_unit<E>(self) -> Result<Opts, E> {
        Ok(Opts::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Opts, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Opts::Other)
    }
}

/// `messages`: a non-empty array (anything else: the full parse says
/// what is wrong).
struct NonEmptyArray;

impl<'de> DeserializeSeed<'de> for NonEmptyArray {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NonEmptyArray {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-empty array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut n = 0usize;
        while seq.next_element::<Skip>()?.is_some() {
            n += 1;
        }
        match n {
            0 => Err(de::Error::custom("empty")),
            _ => Ok(true),
        }
    }
}

/// Any value, visited as the full parse visits it (every number parsed,
/// every string checked), nothing kept.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
#[path = "chat_body_tests.rs"]
mod tests;
