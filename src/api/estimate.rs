//! What admission knows of a request before it is sent: the route it names
//! and an estimate of the tokens it may use.
//!
//! Place in the pipeline: `server::router::parse_routed` reads the route
//! through [`Routed`] and reserves [`estimate_tokens`] against TPM limits;
//! the real usage (`usage`) replaces the estimate when the answer ends. Must
//! not read answers.

/// What admission needs of a routed request: the route it names, and how
/// many tokens it may generate (for the token estimate checked against TPM
/// limits before it is sent; the real usage is charged after).
pub trait Routed {
    fn model(&self) -> &str;
    /// The most output tokens the request allows (0 when it generates none
    /// or sets no bound).
    fn max_output_tokens(&self) -> u64 {
        0
    }
    /// The body as a JSON object, for requests that keep one (what a
    /// conversation key is read from).
    fn body(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        None
    }
}

/// `max_completion_tokens`, `max_tokens` or `max_output_tokens`, times `n`.
pub fn max_output_tokens(body: &serde_json::Map<String, serde_json::Value>) -> u64 {
    let bound = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    let n = body
        .get("n")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1)
        .max(1);
    bound.saturating_mul(n)
}

/// The estimate admission reserves: about four bytes of request per prompt
/// token (an over-estimate for JSON, which is the safe side), plus the
/// output bound.
pub fn estimate_tokens(wire_len: usize, max_output: u64) -> u64 {
    Estimate::of(wire_len, max_output).total()
}

/// [`estimate_tokens`] in its two parts (prompt and output are priced
/// apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimate {
    pub prompt: u64,
    pub output: u64,
}

impl Estimate {
    pub fn of(wire_len: usize, max_output: u64) -> Self {
        Estimate {
            prompt: (wire_len as u64).div_ceil(4),
            output: max_output,
        }
    }

    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.output)
    }
}

macro_rules! routed_by_body {
    ($($t:ty),*) => {$(
        impl Routed for $t {
            fn model(&self) -> &str {
                &self.model
            }
            fn max_output_tokens(&self) -> u64 {
                max_output_tokens(&self.body)
            }
            fn body(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
                Some(&self.body)
            }
        }
    )*};
}

routed_by_body!(
    super::completions::CompletionRequest,
    super::messages::MessagesRequest,
    super::responses::ResponsesRequest
);

impl Routed for super::embeddings::EmbeddingsBody {
    fn model(&self) -> &str {
        super::embeddings::EmbeddingsBody::model(self)
    }
}

impl Routed for super::rerank::RerankRequest {
    fn model(&self) -> &str {
        &self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_cover_the_prompt_and_the_output_bound() {
        let body = serde_json::json!({"max_tokens": 100, "n": 2});
        assert_eq!(max_output_tokens(body.as_object().unwrap()), 200);
        let body = serde_json::json!({"max_completion_tokens": 7, "max_tokens": 100});
        assert_eq!(max_output_tokens(body.as_object().unwrap()), 7);
        assert_eq!(max_output_tokens(&serde_json::Map::new()), 0);
        assert_eq!(estimate_tokens(401, 10), 111);
    }
}
