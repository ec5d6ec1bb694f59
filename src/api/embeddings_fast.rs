//! The embeddings answer without a tree of JSON values: an upstream's
//! answer read straight into vectors, and the client's answer written
//! straight into one buffer.
//!
//! Place in the pipeline: behind `api::embeddings` (its parent), which
//! falls back to its tree-based reader when [`parse`] refuses an answer
//! (so faults are named as before). A 2,048-input answer holds about
//! 200,000 numbers: as `serde_json::Value`s they cost a node and an
//! allocation each, twice. Must write exactly the bytes the tree-based
//! writer wrote (keys in sorted order, each `f32` printed as the `f64` it
//! widens to, a non-finite one as `null`): clients see no difference.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::ser::{CompactFormatter, Formatter};

use super::{EmbedReply, EncodingFormat, decode_base64, encode_base64};

#[derive(Deserialize)]
struct Reply {
    data: Option<Vec<Item>>,
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct Item {
    index: Option<u64>,
    embedding: Option<Vector>,
}

#[derive(Deserialize)]
struct UsageIn {
    prompt_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

/// An embedding as floats or base64 (little-endian `f32`s).
struct Vector(Vec<f32>);

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of numbers or a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vector, E> {
                decode_base64(s)
                    .map(Vector)
                    .ok_or_else(|| E::custom("invalid base64 embedding"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vector, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).max(256));
                // As the tree reader: the number as f64, then narrowed.
                while let Some(x) = seq.next_element::<f64>()? {
                    out.push(x as f32);
                }
                Ok(Vector(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The answer's vectors in index order, or `Err` for anything the tree
/// reader should look at (a missing part, a bad index, a wrong count).
pub(super) fn parse(body: &[u8], expected: usize) -> Result<EmbedReply, ()> {
    let reply: Reply = serde_json::from_slice(body).map_err(|_| ())?;
    let data = reply.data.ok_or(())?;
    if data.len() != expected {
        return Err(());
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (pos, item) in data.into_iter().enumerate() {
        let index = item.index.map_or(pos, |i| i as usize);
        let vector = item.embedding.ok_or(())?.0;
        match vectors.get_mut(index) {
            Some(slot @ None) => *slot = Some(vector),
            _ => return Err(()),
        }
    }
    let usage = reply.usage;
    let prompt_tokens = usage.as_ref().and_then(|u| u.prompt_tokens).unwrap_or(0);
    let total_tokens = usage
        .as_ref()
        .and_then(|u| u.total_tokens)
        .unwrap_or(prompt_tokens);
    Ok(EmbedReply {
        vectors: vectors.into_iter().map(Option::unwrap_or_default).collect(),
        prompt_tokens,
        total_tokens,
    })
}

/// The client's answer: `{"data":[{"embedding":..,"index":i,"object":
/// "embedding"},..],"model":..,"object":"list","usage":{..}}`.
pub(super) fn write<V: AsRef<[f32]>>(
    model: &str,
    vectors: &[V],
    format: EncodingFormat,
    prompt_tokens: u64,
    total_tokens: u64,
) -> Vec<u8> {
    let per_vector = vectors.first().map_or(0, |v| v.as_ref().len()) * 20 + 64;
    let mut out = Vec::with_capacity(vectors.len() * per_vector + model.len() + 128);
    let mut f = CompactFormatter;
    out.extend_from_slice(b"{\"data\":[");
    for (index, v) in vectors.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"embedding\":");
        match format {
            EncodingFormat::Float => {
                out.push(b'[');
                for (i, x) in v.as_ref().iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if x.is_finite() {
                        let _ = f.write_f64(&mut out, f64::from(*x));
                    } else {
                        out.extend_from_slice(b"null");
                    }
                }
                out.push(b']');
            }
            EncodingFormat::Base64 => {
                out.push(b'"');
                out.extend_from_slice(encode_base64(v.as_ref()).as_bytes());
                out.push(b'"');
            }
        }
        out.extend_from_slice(b",\"index\":");
        let _ = f.write_u64(&mut out, index as u64);
        out.extend_from_slice(b",\"object\":\"embedding\"}");
    }
    out.extend_from_slice(b"],\"model\":");
    let _ = serde_json::to_writer(&mut out, model);
    out.extend_from_slice(b",\"object\":\"list\",\"usage\":{\"prompt_tokens\":");
    let _ = f.write_u64(&mut out, prompt_tokens);
    out.extend_from_slice(b",\"total_tokens\":");
    let _ = f.write_u64(&mut out, total_tokens);
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{EncodingFormat, encode_base64, parse_tree};

    /// The tree-based writer this one replaces, kept as the reference.
    fn tree_write(
        model: &str,
        vectors: &[Vec<f32>],
        format: EncodingFormat,
        prompt: u64,
        total: u64,
    ) -> Vec<u8> {
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = match format {
                    EncodingFormat::Float => json!(v),
                    EncodingFormat::Base64 => Value::String(encode_base64(v)),
                };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        serde_json::to_vec(&json!({
            "object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": total},
        }))
        .unwrap()
    }

    fn vectors() -> Vec<Vec<f32>> {
        vec![
            vec![
                0.1,
                -0.2,
                3.0e-8,
                1.0,
                0.0,
                f32::MAX,
                f32::INFINITY,
                123456.79,
            ],
            vec![],
            vec![-0.0, 7.0, f32::MIN_POSITIVE, f32::NAN],
        ]
    }

    #[test]
    fn writes_the_bytes_the_tree_wrote() {
        for format in [EncodingFormat::Float, EncodingFormat::Base64] {
            for model in ["emb", "a \"quoted\" \\ name\n", "ünï"] {
                let fast = super::write(model, &vectors(), format, 7, 9);
                let tree = tree_write(model, &vectors(), format, 7, 9);
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(tree).unwrap()
                );
            }
        }
        let none: Vec<Vec<f32>> = Vec::new();
        assert_eq!(
            super::write("m", &none, EncodingFormat::Float, 0, 0),
            tree_write("m", &none, EncodingFormat::Float, 0, 0)
        );
    }

    #[test]
    fn reads_what_the_tree_reads() {
        let answers = [
            r#"{"data":[{"index":1,"embedding":[1,2.5]},{"index":0,"embedding":[0.1,-3e-5]}],"usage":{"prompt_tokens":4,"total_tokens":6}}"#,
            r#"{"object":"list","data":[{"embedding":"AACAPwAAAEA="},{"embedding":[1e300,null]}]}"#,
            r#"{"data":[{"embedding":[1]},{"embedding":[2]}],"usage":{"prompt_tokens":3}}"#,
            r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}"#,
            r#"{"data":[{"index":5,"embedding":[1]},{"embedding":[2]}]}"#,
            r#"{"data":[{"embedding":[1]}]}"#,
            r#"{"data":[{"embedding":"%%"},{"embedding":[2]}]}"#,
            r#"{"data":[{"embedding":{"x":1}},{"embedding":[2]}]}"#,
            r#"{"data":[{"embedding":["a"]},{"embedding":[2]}]}"#,
            r#"{"data":[{"index":"0","embedding":[1]},{"embedding":[2]}]}"#,
            r#"{"data":{"embedding":[1]}}"#,
            r#"{"usage":{}}"#,
            r#"{"data":[{"embedding":[1]},{}],"usage":5}"#,
            r#"not json"#,
        ];
        for answer in answers {
            let via = super::super::parse_upstream_reply(answer.as_bytes(), 2);
            let tree = parse_tree(answer.as_bytes(), 2);
            assert_eq!(via, tree, "{answer}");
        }
        // The fast reader takes the common answer itself.
        assert!(super::parse(answers[0].as_bytes(), 2).is_ok());
        assert!(super::parse(answers[1].as_bytes(), 2).is_err()); // null: the tree names it
    }
}
