//! A chat request's body: the client's bytes, what routing reads of them,
//! and the parsed tree only when something needs it.
//!
//! Place in the pipeline: `api::chat::ChatRequest` holds one. Parsing a
//! client body ([`scan`], in `chat_scan`) validates all of it, accepting
//! nothing a full `serde_json` parse refuses, but keeps no tree: it reads
//! `model` (and where its value sits in the bytes), `stream`, the shape of
//! `messages`, and the few fields estimates and providers ask about. An
//! OpenAI-compatible target then gets the client's own bytes with only
//! `model` spliced in ([`ChatBody::with_model`]); a feature that needs the
//! tree (translation to another kind, the cache key, a continuation, an
//! edit the splice cannot do) gets it through `Deref`, parsed once per
//! request and kept. Anything the scan is unsure of (a duplicate or
//! escaped top-level key, a number or nesting it does not vouch for, an
//! invalid body) falls back to the full parse, so errors are today's, word
//! for word. Must not interpret fields beyond that.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::chat_scan::Opts;
pub use super::chat_scan::{Head, scan};

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

impl Raw {
    /// Where the usage request goes when one is added: before the `}`
    /// closing the body (the scan proved the body one object, so its last
    /// `}` closes it).
    fn usage_at(&self) -> Option<usize> {
        let end = self.head.model_span.end;
        self.add_usage
            .then(|| self.bytes.iter().rposition(|&c| c == b'}'))
            .flatten()
            .filter(|c| *c >= end)
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

    /// `stream_options.include_usage`, as sent (see [`include_usage`]).
    pub fn include_usage(&self) -> bool {
        match &self.raw {
            Some(r) => {
                r.add_usage
                    || r.head.stream_options
                        == Opts::Object {
                            include_usage: true,
                        }
            }
            None => include_usage(self),
        }
    }

    /// Asks the upstream for a usage chunk, as [`ask_for_usage`] does
    /// on the tree: on the bytes when the client sent no `stream_options`
    /// (or already asked), on the tree otherwise.
    pub fn ask_for_usage(&mut self) {
        let Some(r) = &mut self.raw else {
            return ask_for_usage(self);
        };
        match r.head.stream_options {
            Opts::Absent => r.add_usage = true,
            Opts::Object {
                include_usage: true,
            }
            | Opts::Other => {}
            Opts::Null | Opts::Object { .. } => ask_for_usage(self),
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
        let close = r.usage_at();
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
        let close = r.usage_at();
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
            ask_for_usage(&mut tree);
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

/// `stream_options.include_usage` as a chat or completions body sends it.
pub fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Asks the upstream for a usage chunk at the end of a chat or completions
/// stream (in place: no copy of the body). A `stream_options` that is not
/// an object is left alone: the upstream judges the request as sent.
pub fn ask_for_usage(body: &mut Map<String, Value>) {
    match body.get_mut("stream_options") {
        Some(Value::Object(o)) => {
            o.insert("include_usage".into(), Value::Bool(true));
        }
        None | Some(Value::Null) => {
            let mut o = Map::new();
            o.insert("include_usage".into(), Value::Bool(true));
            body.insert("stream_options".into(), Value::Object(o));
        }
        Some(_) => {}
    }
}

#[cfg(test)]
#[path = "chat_body_tests.rs"]
mod tests;
