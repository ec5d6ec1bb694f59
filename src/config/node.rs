//! YAML text -> a tree of nodes, each knowing its line and its source text.
//!
//! Place in the pipeline: the first step of loading one file. Only YAML syntax
//! is checked here (serde-saphyr parses); a syntax error stops this one file
//! and is returned as a single [`SyntaxError`]. What keys and values mean is
//! left to `shape` (which keys exist, which types) and `validate`. Must not
//! know any policy key, and must not interpret scalars beyond what
//! serde-saphyr already did.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node: its 1-based line, its text as written (for scalars; empty
/// for collections) and its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub line: u64,
    pub raw: String,
    pub kind: Kind,
}

/// A node's value as serde-saphyr reads it untyped (plain `8080` is a number,
/// `"8080"` a string; `raw` keeps the spelling for typed reads).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Null,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A file that is not valid YAML; `line`/`column` when the parser knows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(super) struct SyntaxError {
    pub position: Option<(u64, u64)>,
    pub message: String,
}

/// Parses one YAML document into a node tree.
pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    match serde_saphyr::from_str::<Spanned<Tree>>(text) {
        Ok(tree) => Ok(build(text, tree)),
        Err(e) => Err(SyntaxError {
            position: e.location().map(|l| (l.line(), l.column())),
            message: message_of(&e),
        }),
    }
}

/// serde-saphyr's message without the rendered snippet, the `error: ` prefix
/// and the `line N column M: ` position (callers give the location).
pub(super) fn message_of(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or(&text).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    strip_position(first).to_string()
}

fn strip_position(message: &str) -> &str {
    match message
        .strip_prefix("line ")
        .and_then(|m| m.split_once(": "))
    {
        Some((pos, rest)) if pos.contains("column") => rest,
        _ => message,
    }
}

/// The tree as serde-saphyr hands it over, before source text is attached.
enum Tree {
    Null,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<Tree>, Spanned<Tree>)>),
}

fn build(text: &str, tree: Spanned<Tree>) -> Node {
    // `defined` is where an alias's value is written; `referenced` is where it is used.
    let span = tree.defined.span();
    let raw = match (span.byte_offset(), span.byte_len()) {
        (Some(start), Some(len)) => usize::try_from(start)
            .ok()
            .zip(usize::try_from(start.saturating_add(len)).ok())
            .and_then(|(a, b)| text.get(a..b))
            .unwrap_or_default(),
        _ => "",
    };
    let (raw, kind) = match tree.value {
        Tree::Null => (raw.to_string(), Kind::Null),
        Tree::Bool(b) => (raw.to_string(), Kind::Bool(b)),
        Tree::UInt(n) => (raw.to_string(), Kind::UInt(n)),
        Tree::Int(n) => (raw.to_string(), Kind::Int(n)),
        Tree::Float(f) => (raw.to_string(), Kind::Float(f)),
        Tree::Str(s) => (raw.to_string(), Kind::Str(s)),
        Tree::Seq(items) => (
            String::new(),
            Kind::Seq(items.into_iter().map(|t| build(text, t)).collect()),
        ),
        Tree::Map(entries) => (
            String::new(),
            Kind::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (build(text, k), build(text, v)))
                    .collect(),
            ),
        ),
    };
    Node {
        line: tree.referenced.line(),
        raw,
        kind,
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::UInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Tree, E> {
        // Too big for any policy field; keep the spelling so typed reads report it.
        Ok(Tree::Str(v.to_string()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Tree, E> {
        Ok(Tree::Str(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Tree, E> {
        Ok(Tree::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = a.next_element()? {
            items.push(item);
        }
        Ok(Tree::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = a.next_entry()? {
            entries.push(entry);
        }
        Ok(Tree::Map(entries))
    }
}

/// A key's dotted path: `parent.key`, or `key` at the top.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}
