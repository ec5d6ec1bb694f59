//! Provider kind `mock`: a built-in, in-process fake LLM and embedder.
//!
//! Place in the pipeline: same as any provider, so the shipped policies run
//! offline. Answers deterministically (chat echoes the last user message,
//! embeddings are unit vectors seeded by the input) after the configured
//! latency, and fails a configured fraction of calls with a configured status
//! to exercise retries, failover and breakers. Must not do network I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::{ChatReply, UpstreamError};
use crate::api::chat::ChatRequest;
use crate::api::embeddings::EmbedReply;
use crate::config::{MockSpec, Timeouts};

pub struct MockProvider {
    name: String,
    spec: MockSpec,
    timeouts: Timeouts,
}

impl MockProvider {
    pub fn new(name: &str, spec: MockSpec, timeouts: &Timeouts) -> Self {
        MockProvider {
            name: name.to_string(),
            spec,
            timeouts: timeouts.clone(),
        }
    }

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
            let body = json!({"error": {
                "message": format!("mock provider {} injected failure", self.name),
                "type": "server_error", "param": null, "code": "mock_failure"}});
            return Err(UpstreamError::Status {
                status: self.spec.failure_status,
                body: Bytes::from(body.to_string()),
                retry_after: None,
            });
        }
        Ok(())
    }

    pub async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        self.respond().await?;
        let prompt = last_user_text(&request.body);
        let content = format!("[{}] You said: {}", self.name, prompt);
        let prompt_tokens = word_count(&prompt) as u64;
        let completion_tokens = word_count(&content) as u64;
        let id = format!("chatcmpl-mock-{:016x}", fastrand::u64(..));
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if !stream {
            let reply = json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            });
            return Ok(ChatReply::Full(Bytes::from(reply.to_string())));
        }
        let chunk = |delta: Value, finish: Value| {
            let c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            Ok(Bytes::from(format!("data: {c}\n\n")))
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        for (i, word) in content.split(' ').enumerate() {
            let piece = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            events.push(chunk(json!({"content": piece}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        events.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
        Ok(ChatReply::Stream(
            futures_util::stream::iter(events).boxed(),
        ))
    }

    pub async fn embed(
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
}

/// A deterministic unit vector for `text`.
pub fn mock_vector(text: &str, dims: usize) -> Vec<f32> {
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
