//! Provider kind `mock`: a built-in, in-process fake LLM and embedder.
//!
//! Place in the pipeline: same as any provider, so the shipped policies run
//! offline. Answers deterministically (chat echoes the last user message,
//! embeddings are unit vectors seeded by the input, rerank scores are the
//! word overlap of query and document) after the configured
//! latency, and fails a configured fraction of calls with a configured status
//! to exercise retries, failover and breakers. Chat honours what SDKs lean
//! on (`n`, token limits, usage in streams, tools, structured outputs:
//! `chat.rs`, `tools.rs`, `schema.rs`; a coding agent's prompt that names
//! a tool and gives its argument in `backquotes` gets a real tool turn),
//! and legacy `/completions` is passed through to
//! it like to an OpenAI-compatible server (`completions.rs`). Must not do
//! network I/O.

mod chat;
mod completions;
mod schema;
mod tools;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{BuildError, Capabilities, ChatReply, KindConfig, Provider, UpstreamError};
use crate::api::chat::ChatRequest;
use crate::api::completions::PATH as COMPLETIONS;
use crate::api::embeddings::EmbedReply;
use crate::api::error::envelope;
use crate::api::rerank::RerankReply;
use crate::config::{ConfigError, Env, KindSettings, ProviderSpec, Timeouts};

/// `kind: mock` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub latency: Duration,
    pub failure_rate: f64,
    pub failure_status: u16,
    pub embedding_dims: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    latency: Option<String>,
    failure_rate: Option<f64>,
    failure_status: Option<u16>,
    embedding_dims: Option<usize>,
}

impl KindConfig for Config {
    const KIND: &'static str = "mock";
    type Provider = MockProvider;

    fn parse(settings: &KindSettings, _env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(Self::KIND);
        let failure_rate = raw.failure_rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&failure_rate) {
            report.at("failure_rate", "must be between 0 and 1");
        }
        let failure_status = raw.failure_status.unwrap_or(503);
        if !(400..=599).contains(&failure_status) {
            report.at("failure_status", "must be an HTTP error status (400-599)");
        }
        let embedding_dims = raw.embedding_dims.unwrap_or(16);
        if embedding_dims == 0 {
            report.at("embedding_dims", "must be at least 1");
        }
        let latency = report.duration("latency", &raw.latency, Duration::ZERO);
        report.finish(Config {
            latency,
            failure_rate,
            failure_status,
            embedding_dims,
        })
    }

    fn build(&self, spec: &ProviderSpec) -> Result<MockProvider, BuildError> {
        Ok(MockProvider {
            name: spec.name.clone(),
            spec: self.clone(),
            timeouts: spec.timeouts.clone(),
        })
    }
}

const MOCK_CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    chat_stream: true,
    embeddings: true,
    tools: true,
    images: false,
    rerank: true,
    native: &[COMPLETIONS],
    prefill: false,
};

#[derive(Debug)]
pub struct MockProvider {
    name: String,
    spec: Config,
    timeouts: Timeouts,
}

#[async_trait::async_trait]
impl Provider for MockProvider {
    fn capabilities(&self) -> Capabilities {
        MOCK_CAPABILITIES
    }

    /// The mock "reasons" when asked, and takes `top_k` (as it takes any
    /// sampling setting: its answers do not depend on them).
    fn ext_support(&self, _request: &ChatRequest, _model: &str) -> super::ExtSupport {
        super::ExtSupport {
            reasoning: true,
            top_k: true,
            serial_tool_calls: true,
        }
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        self.respond().await?;
        let answer = chat::answer(&self.name, &request.body, request.reasoning().is_some());
        let n = chat::choices(&request.body);
        let id = format!("chatcmpl-mock-{:016x}", fastrand::u64(..));
        if !stream {
            return Ok(ChatReply::whole(chat::full(&answer, &id, now(), model, n)));
        }
        let with_usage = chat::include_usage(&request.body);
        let events = chat::chunks(&answer, &id, now(), model, n, with_usage);
        Ok(ChatReply::Stream(
            futures_util::stream::iter(events.into_iter().map(Ok)).boxed(),
        ))
    }

    async fn passthrough(
        &self,
        path: &str,
        body: Bytes,
        _client_headers: &http::HeaderMap,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        if path != COMPLETIONS {
            return Err(UpstreamError::Unsupported("this endpoint"));
        }
        self.respond().await?;
        let body: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("mock: request body: {e}")))?;
        let id = format!("cmpl-mock-{:016x}", fastrand::u64(..));
        let mut events = completions::answer(&self.name, &body, &id, now(), stream);
        Ok(if stream {
            ChatReply::Stream(futures_util::stream::iter(events.into_iter().map(Ok)).boxed())
        } else {
            ChatReply::whole(events.pop().unwrap_or_default())
        })
    }

    async fn embed(
        &self,
        _model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        self.respond().await?;
        let dims = extra
            .get("dimensions")
            .and_then(Value::as_u64)
            .map(|d| d as usize)
            .unwrap_or(self.spec.embedding_dims);
        let mut tokens = 0u64;
        let vectors = inputs
            .iter()
            .map(|input| {
                tokens += match input {
                    Value::Array(t) => t.len(),
                    Value::String(s) => word_count(s),
                    _ => 1,
                } as u64;
                mock_vector(&input.to_string(), dims)
            })
            .collect();
        Ok(EmbedReply {
            vectors,
            prompt_tokens: tokens,
            total_tokens: tokens,
        })
    }

    async fn rerank(
        &self,
        _model: &str,
        query: &str,
        documents: &[Arc<str>],
        _extra: &Map<String, Value>,
    ) -> Result<RerankReply, UpstreamError> {
        self.respond().await?;
        let q = words(query);
        let mut tokens = word_count(query) as u64;
        let scores = documents
            .iter()
            .map(|d| {
                tokens += word_count(d) as u64;
                overlap(&q, &words(d))
            })
            .collect();
        Ok(RerankReply {
            scores,
            total_tokens: tokens,
            search_units: 0,
        })
    }
}

/// The lowercase alphanumeric words of `text`.
fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Jaccard overlap of two word sets, in 0..=1 (0 when both are empty).
pub(super) fn overlap(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

impl MockProvider {
    /// Waits the configured latency (bounded by the timeouts) and rolls the
    /// failure dice.
    async fn respond(&self) -> Result<(), UpstreamError> {
        let limit = self.timeouts.first_byte.min(self.timeouts.total);
        if self.spec.latency > limit {
            tokio::time::sleep(limit).await;
            return Err(UpstreamError::Timeout(if limit == self.timeouts.total {
                "total"
            } else {
                "first_byte"
            }));
        }
        tokio::time::sleep(self.spec.latency).await;
        if self.spec.failure_rate > 0.0 && fastrand::f64() < self.spec.failure_rate {
            let message = format!("mock provider {} injected failure", self.name);
            return Err(UpstreamError::Status {
                status: self.spec.failure_status,
                body: envelope(&message, "server_error", None, Some("mock_failure")),
                retry_after: None,
            });
        }
        Ok(())
    }
}

/// A deterministic unit vector for `text`.
pub(super) fn mock_vector(text: &str, dims: usize) -> Vec<f32> {
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    let v: Vec<f32> = (0..dims).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

/// Seconds since the Unix epoch, for `created`.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// An OpenAI `usage` object.
fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
           "total_tokens": prompt_tokens + completion_tokens})
}

fn word_count(s: &str) -> usize {
    s.split_whitespace().count().max(1)
}

fn last_user_text(body: &Map<String, Value>) -> String {
    let messages = body.get("messages").and_then(Value::as_array);
    let last = messages.and_then(|m| {
        m.iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    });
    match last.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_jaccard_of_lowercase_words() {
        let q = words("Capital of France?");
        assert_eq!(overlap(&q, &words("Paris is the capital of France")), 0.5);
        assert_eq!(overlap(&q, &words("bananas")), 0.0);
        assert_eq!(overlap(&words(""), &words("")), 0.0);
    }
}
