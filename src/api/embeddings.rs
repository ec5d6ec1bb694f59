//! Embeddings on the wire: request parsing, vector encodings, responses.
//!
//! Place in the pipeline: `server` parses client requests here and writes
//! responses from here; providers decode upstream replies with
//! [`parse_upstream_reply`]. Inputs are normalised to one JSON value per item
//! (a string or a token array) so cache and fan-out work per item. Must not
//! decide routing, batching or caching.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};

use super::error::GatewayError;

#[path = "embeddings_body.rs"]
mod body;
#[path = "embeddings_fast.rs"]
mod fast;
#[path = "embeddings_raw.rs"]
mod raw;

pub use body::{ClientBody, EmbeddingsBody};
pub use raw::{Prescan, RawEmbed, join as join_raw};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingFormat {
    Float,
    Base64,
}

impl EncodingFormat {
    /// As `encoding_format` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            EncodingFormat::Float => "float",
            EncodingFormat::Base64 => "base64",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbeddingsRequest {
    pub model: String,
    /// One value per input: a string or an array of token ids.
    pub inputs: Vec<Value>,
    pub encoding_format: EncodingFormat,
    /// Other fields (`dimensions`, `user`, vendor extensions), passed upstream.
    pub extra: Map<String, Value>,
}

fn bad_input(message: &str) -> GatewayError {
    GatewayError::invalid_param("input", message.to_string())
}

fn is_token(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n <= u32::MAX as u64)
}

fn check_tokens(items: &[Value]) -> Result<(), GatewayError> {
    if items.is_empty() {
        return Err(bad_input("'input' token arrays must not be empty."));
    }
    if !items.iter().all(is_token) {
        return Err(bad_input(
            "'input' token arrays must hold non-negative integer token ids.",
        ));
    }
    Ok(())
}

impl EmbeddingsRequest {
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        let value: Value = super::parse_json(body)?;
        let Value::Object(mut body) = value else {
            return Err(GatewayError::invalid("Request body must be a JSON object."));
        };
        let model = super::required_model(&body)?;
        body.remove("model");
        let inputs = match body.remove("input") {
            None | Some(Value::Null) => {
                return Err(bad_input("Missing required parameter: 'input'."));
            }
            Some(Value::String(s)) => {
                if s.is_empty() {
                    return Err(bad_input("'input' must not be an empty string."));
                }
                vec![Value::String(s)]
            }
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(bad_input("'input' must not be an empty array."));
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
                check_tokens(&items)?;
                vec![Value::Array(items)]
            }
            Some(Value::Array(items)) => {
                // Checked where they are: 2,048 inputs are not moved.
                for item in &items {
                    match item {
                        Value::String(s) if s.is_empty() => {
                            return Err(bad_input("'input' must not contain empty strings."));
                        }
                        Value::String(_) => {}
                        Value::Array(tokens) => check_tokens(tokens)?,
                        _ => {
                            return Err(bad_input(
                                "'input' must be a string, an array of strings, an array of token ids or an array of token arrays.",
                            ));
                        }
                    }
                }
                items
            }
            Some(_) => {
                return Err(bad_input(
                    "'input' must be a string, an array of strings, an array of token ids or an array of token arrays.",
                ));
            }
        };
        let encoding_format = match body.remove("encoding_format") {
            None | Some(Value::Null) => EncodingFormat::Float,
            Some(Value::String(s)) if s == "float" => EncodingFormat::Float,
            Some(Value::String(s)) if s == "base64" => EncodingFormat::Base64,
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "encoding_format",
                    "'encoding_format' must be \"float\" or \"base64\".",
                ));
            }
        };
        if let Some(d) = body.get("dimensions")
            && d.as_u64().is_none_or(|d| d < 1)
        {
            return Err(GatewayError::invalid_param(
                "dimensions",
                "'dimensions' must be a positive integer.",
            ));
        }
        Ok(EmbeddingsRequest {
            model,
            inputs,
            encoding_format,
            extra: body,
        })
    }

    /// Canonical form of the parameters that change what vectors come back
    /// (everything but the inputs, the model and the encoding).
    pub fn canonical_params(&self) -> String {
        let mut out = String::new();
        let mut params = self.extra.clone();
        params.remove("user");
        super::write_canonical(&Value::Object(params), &mut out);
        out
    }
}

pub fn encode_base64(vector: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(vector.len() * 4);
    for x in vector {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    B64.encode(bytes)
}

pub fn decode_base64(text: &str) -> Option<Vec<f32>> {
    let bytes = B64.decode(text).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// What an upstream returned for one batch, vectors in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedReply {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// What one embeddings attempt answers: the vectors, or (when the client's
/// own encoding was asked for and the answer is the plain one) the
/// upstream's answer as it came.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedAnswer {
    Vectors(EmbedReply),
    Raw(RawEmbed),
}

impl EmbedAnswer {
    /// How many vectors it holds.
    pub fn count(&self) -> usize {
        match self {
            EmbedAnswer::Vectors(r) => r.vectors.len(),
            EmbedAnswer::Raw(r) => r.count,
        }
    }

    pub fn prompt_tokens(&self) -> u64 {
        match self {
            EmbedAnswer::Vectors(r) => r.prompt_tokens,
            EmbedAnswer::Raw(r) => r.prompt_tokens,
        }
    }

    pub fn total_tokens(&self) -> u64 {
        match self {
            EmbedAnswer::Vectors(r) => r.total_tokens,
            EmbedAnswer::Raw(r) => r.total_tokens,
        }
    }

    /// The vectors (a passed-through answer read now).
    pub fn into_vectors(self) -> Result<EmbedReply, ReplyError> {
        match self {
            EmbedAnswer::Vectors(r) => Ok(r),
            EmbedAnswer::Raw(r) => parse_upstream_reply(&r.to_bytes(), r.count),
        }
    }
}

/// An upstream's answer to a request for vectors, `expected` of them, that
/// `prescan` (made for them in the asked encoding) kept and walked while it
/// arrived: as it came when it is the plain answer (see `embeddings_raw`),
/// else decoded as [`parse_upstream_reply`] does (which names any fault).
pub fn upstream_answer(expected: usize, prescan: Prescan) -> Result<EmbedAnswer, ReplyError> {
    match prescan.finish() {
        Ok(raw) => Ok(EmbedAnswer::Raw(raw)),
        Err(body) => parse_upstream_reply(&body, expected).map(EmbedAnswer::Vectors),
    }
}

/// An upstream embeddings body that is not a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing 'data' array")]
    NoData,
    #[error("expected {expected} embeddings, upstream returned {got}")]
    Count { expected: usize, got: usize },
    #[error("invalid base64 embedding")]
    Base64,
    #[error("non-numeric embedding value")]
    NotNumeric,
    #[error("missing 'embedding'")]
    NoEmbedding,
    #[error("bad or repeated embedding index {0}")]
    Index(usize),
}

/// Decodes an upstream embeddings body (float or base64 vectors, any order of
/// `data`), checking that it answers exactly `expected` inputs.
pub fn parse_upstream_reply(body: &[u8], expected: usize) -> Result<EmbedReply, ReplyError> {
    // The common answer reads straight into vectors (no tree of numbers);
    // anything it does not take goes through the tree, which names the fault.
    if let Ok(reply) = fast::parse(body, expected) {
        return Ok(reply);
    }
    parse_tree(body, expected)
}

fn parse_tree(body: &[u8], expected: usize) -> Result<EmbedReply, ReplyError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ReplyError::Json(e.to_string()))?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or(ReplyError::NoData)?;
    if data.len() != expected {
        return Err(ReplyError::Count {
            expected,
            got: data.len(),
        });
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (pos, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .map(|i| i as usize)
            .unwrap_or(pos);
        let vector = match item.get("embedding") {
            Some(Value::String(s)) => decode_base64(s).ok_or(ReplyError::Base64)?,
            Some(Value::Array(xs)) => xs
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or(ReplyError::NotNumeric)?,
            _ => return Err(ReplyError::NoEmbedding),
        };
        match vectors.get_mut(index) {
            Some(slot @ None) => *slot = Some(vector),
            _ => return Err(ReplyError::Index(index)),
        }
    }
    let usage = v.get("usage");
    let tokens = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64);
    let prompt_tokens = tokens("prompt_tokens").unwrap_or(0);
    Ok(EmbedReply {
        vectors: vectors.into_iter().map(Option::unwrap_or_default).collect(),
        prompt_tokens,
        total_tokens: tokens("total_tokens").unwrap_or(prompt_tokens),
    })
}

/// The client response, `data[i].index == i` in input order.
pub fn response_body<V: AsRef<[f32]>>(
    model: &str,
    vectors: &[V],
    format: EncodingFormat,
    prompt_tokens: u64,
    total_tokens: u64,
) -> Vec<u8> {
    fast::write(model, vectors, format, prompt_tokens, total_tokens)
}
