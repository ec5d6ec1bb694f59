//! Embeddings through InvokeModel: Amazon Titan Text Embeddings (one input
//! per call) and Cohere Embed on Bedrock (up to 96 texts per call).
//!
//! Place in the pipeline: the gateway batches inputs by
//! [`max_batch_inputs`], the adapter sends [`embed_request`] to
//! `invoke_path(model)` and decodes the answer with [`embed_response`]. The
//! family comes from the model id: `amazon.titan-embed...` or
//! `cohere.embed...` (also inside inference-profile ids and ARNs).
//!
//! Translated: string inputs; `dimensions` -> Titan v2 `dimensions`
//! (256, 512, 1024), Titan image v1 `embeddingConfig.outputEmbeddingLength`
//! (256, 384, 1024) or Cohere v4 `output_dimension` (256, 512, 1024, 1536);
//! the vendor extensions `normalize` (Titan v2), `input_type` and `truncate`
//! (Cohere). Unsupported: token-array inputs, `dimensions` elsewhere, any
//! other extra field. Dropped: `user`. Cohere bodies carry no token count:
//! the adapter can read it from the response headers with
//! [`input_token_count`].
//!
//! Must not: split or merge batches (the gateway does), or reorder vectors.

use serde_json::{Map, Value, json};

use super::response::bad;
use super::{invalid, unsupported};
use crate::api::embeddings::EmbedReply;
use crate::providers::translate::TranslateError;

/// Titan Text Embeddings take one `inputText` per call.
pub const TITAN_MAX_BATCH_INPUTS: usize = 1;
/// Cohere Embed on Bedrock takes up to 96 `texts` per call.
pub const COHERE_MAX_BATCH_INPUTS: usize = 96;

/// Per-provider knobs for embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockEmbedSettings {
    /// Cohere `input_type` when the client sends none (Cohere v3 requires
    /// one): `search_document`, `search_query`, `classification`, `clustering`.
    pub cohere_input_type: String,
    /// Cohere `truncate` when the client sends none: `NONE`, `START`, `END`.
    pub cohere_truncate: Option<String>,
}

impl Default for BedrockEmbedSettings {
    fn default() -> Self {
        BedrockEmbedSettings {
            cohere_input_type: "search_document".to_string(),
            cohere_truncate: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    TitanTextV1,
    TitanTextV2,
    TitanImage,
    CohereV3,
    CohereV4,
}

impl Family {
    fn is_titan(self) -> bool {
        matches!(
            self,
            Family::TitanTextV1 | Family::TitanTextV2 | Family::TitanImage
        )
    }

    /// (extra fields passed through as they are, accepted `dimensions`,
    /// the body field `dimensions` goes to)
    fn params(self) -> (&'static [&'static str], &'static [u64], &'static str) {
        match self {
            Family::TitanTextV1 => (&[], &[], ""),
            Family::TitanTextV2 => (&["normalize"], &[256, 512, 1024], "dimensions"),
            Family::TitanImage => (&[], &[256, 384, 1024], "embeddingConfig"),
            Family::CohereV3 => (&["input_type", "truncate"], &[], ""),
            Family::CohereV4 => (
                &["input_type", "truncate"],
                &[256, 512, 1024, 1536],
                "output_dimension",
            ),
        }
    }
}

fn family(model_id: &str) -> Option<Family> {
    if model_id.contains("amazon.titan-embed") {
        Some(if model_id.contains("titan-embed-text-v2") {
            Family::TitanTextV2
        } else if model_id.contains("titan-embed-image") {
            Family::TitanImage
        } else {
            Family::TitanTextV1
        })
    } else if model_id.contains("cohere.embed") {
        Some(if model_id.contains("embed-v4") {
            Family::CohereV4
        } else {
            Family::CohereV3
        })
    } else {
        None
    }
}

fn family_of(model_id: &str) -> Result<Family, TranslateError> {
    family(model_id).ok_or_else(|| {
        unsupported(format!(
            "embeddings with model `{model_id}` (expected an amazon.titan-embed or cohere.embed model)"
        ))
    })
}

/// Inputs one InvokeModel call takes for `model_id` (1 for unknown ids).
pub fn max_batch_inputs(model_id: &str) -> usize {
    match family(model_id) {
        Some(Family::CohereV3 | Family::CohereV4) => COHERE_MAX_BATCH_INPUTS,
        _ => TITAN_MAX_BATCH_INPUTS,
    }
}

/// `dimensions` if the client sent it, checked against `allowed`.
fn dimensions(extra: &Map<String, Value>, allowed: &[u64]) -> Result<Option<u64>, TranslateError> {
    let Some(d) = extra.get("dimensions").filter(|d| !d.is_null()) else {
        return Ok(None);
    };
    match d.as_u64() {
        Some(n) if allowed.contains(&n) => Ok(Some(n)),
        Some(n) if !allowed.is_empty() => Err(unsupported(format!(
            "dimensions={n} (this model takes one of {allowed:?})"
        ))),
        _ if allowed.is_empty() => Err(unsupported("dimensions with this embedding model")),
        _ => Err(invalid("'dimensions' must be a positive integer")),
    }
}

/// The InvokeModel body for `inputs` (at most `max_batch_inputs(model_id)`).
pub fn embed_request(
    inputs: &[Value],
    model_id: &str,
    extra: &Map<String, Value>,
    settings: &BedrockEmbedSettings,
) -> Result<Value, TranslateError> {
    let family = family_of(model_id)?;
    let max = max_batch_inputs(model_id);
    if inputs.is_empty() || inputs.len() > max {
        return Err(invalid(format!(
            "{} inputs in one call; `{model_id}` takes 1 to {max}",
            inputs.len()
        )));
    }
    let texts = inputs
        .iter()
        .map(|i| {
            i.as_str()
                .ok_or_else(|| unsupported("token-array embedding inputs"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (passed, allowed_dims, dims_key) = family.params();
    if let Some(key) = extra
        .keys()
        .find(|k| !matches!(k.as_str(), "user" | "dimensions") && !passed.contains(&k.as_str()))
    {
        return Err(unsupported(format!(
            "embeddings parameter '{key}' with `{model_id}`"
        )));
    }
    let mut body = Map::new();
    if family.is_titan() {
        body.insert("inputText".into(), texts[0].into());
    } else {
        body.insert("texts".into(), json!(texts));
        body.insert(
            "input_type".into(),
            settings.cohere_input_type.clone().into(),
        );
        if let Some(t) = &settings.cohere_truncate {
            body.insert("truncate".into(), t.clone().into());
        }
    }
    for key in passed {
        match extra.get(*key) {
            None | Some(Value::Null) => {}
            Some(v)
                if v.is_boolean() == (*key == "normalize") && (v.is_boolean() || v.is_string()) =>
            {
                body.insert(key.to_string(), v.clone());
            }
            Some(_) => return Err(invalid(format!("'{key}' has the wrong type"))),
        }
    }
    if let Some(d) = dimensions(extra, allowed_dims)? {
        let value = match family {
            Family::TitanImage => json!({ "outputEmbeddingLength": d }),
            _ => d.into(),
        };
        body.insert(dims_key.into(), value);
    }
    Ok(Value::Object(body))
}

fn vector(v: &Value) -> Result<Vec<f32>, TranslateError> {
    v.as_array()
        .ok_or_else(|| bad("embedding is not an array"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| bad("non-numeric embedding value"))
        })
        .collect()
}

/// Decodes an InvokeModel embeddings body that answers `expected` inputs.
pub fn embed_response(
    model_id: &str,
    upstream: &[u8],
    expected: usize,
) -> Result<EmbedReply, TranslateError> {
    let body: Value =
        serde_json::from_slice(upstream).map_err(|_| bad("embeddings body is not JSON"))?;
    let (vectors, tokens) = if family_of(model_id)?.is_titan() {
        let embedding = body
            .get("embedding")
            .or_else(|| body.pointer("/embeddingsByType/float"))
            .ok_or_else(|| bad("Titan body has no embedding"))?;
        let tokens = body.get("inputTextTokenCount").and_then(Value::as_u64);
        (vec![vector(embedding)?], tokens.unwrap_or(0))
    } else {
        // `embeddings_floats`: [[...]]; `embeddings_by_type`: {"float": [[...]]}.
        let embeddings = match body.get("embeddings") {
            Some(Value::Object(by_type)) => by_type.get("float"),
            other => other,
        };
        let list = embeddings
            .and_then(Value::as_array)
            .ok_or_else(|| bad("Cohere body has no float embeddings"))?;
        (list.iter().map(vector).collect::<Result<Vec<_>, _>>()?, 0)
    };
    if vectors.len() != expected {
        return Err(bad(format!(
            "expected {expected} embeddings, upstream returned {}",
            vectors.len()
        )));
    }
    Ok(EmbedReply {
        vectors,
        prompt_tokens: tokens,
        total_tokens: tokens,
    })
}

/// The `X-Amzn-Bedrock-Input-Token-Count` response header InvokeModel sets.
pub fn input_token_count(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get("x-amzn-bedrock-input-token-count")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
#[path = "embed_tests.rs"]
mod tests;
