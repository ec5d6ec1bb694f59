//! Upstream calls that identical concurrent requests share, and what they
//! share: the shared results of the flows' upstream calls.
//!
//! Place in the pipeline: one [`Flights`] lives in the gateway state for the
//! gateway's lifetime (across reloads); the flows join a flight by cache
//! key before calling upstream (`call` for chat and completions answers,
//! `chat_stream` for streams, `items` for embeddings and rerank). Must not
//! hold anything per request.

use std::sync::Arc;

use crate::cache::{CacheKey, SingleFlight, StreamFlights};

/// Every kind of shared upstream call.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    pub chat: SingleFlight<CacheKey, ChatDone>,
    pub embed: SingleFlight<CacheKey, EmbedDone>,
    pub stream: StreamFlights,
    pub rerank: SingleFlight<CacheKey, RerankDone>,
}

/// A chat response shared between coalesced requests.
#[derive(Debug, Clone)]
pub(crate) struct ChatDone {
    pub body: bytes::Bytes,
    /// What the provider's check of `body` read of its usage.
    pub usage: crate::api::usage::AnswerUsage,
    pub provider: Arc<str>,
    /// The target's model that answered; `None` for a cache hit.
    pub model: Option<Arc<str>>,
    pub attempts: u32,
}

/// Embeddings shared between coalesced requests: vectors for the unique
/// missed inputs, in order, and the upstream usage, summed over the
/// sub-batches and per (provider, model) that served them.
#[derive(Debug, Clone)]
pub(crate) struct EmbedDone {
    pub vectors: Arc<Vec<Arc<[f32]>>>,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
    pub spent: Arc<[Spent]>,
    /// Which vectors were answered from expired cache entries
    /// (`stale_if_error`); empty when none.
    pub stale: Arc<[bool]>,
}

/// Prompt tokens one upstream model spent on embedding sub-batches.
#[derive(Debug, Clone)]
pub(crate) struct Spent {
    pub provider: Arc<str>,
    pub model: Arc<str>,
    pub tokens: u64,
}

/// Rerank scores shared between coalesced requests: one per unique missed
/// document, in order, with who served them and the upstream usage.
#[derive(Debug, Clone)]
pub(crate) struct RerankDone {
    pub scores: Arc<Vec<f64>>,
    pub provider: Arc<str>,
    pub model: Arc<str>,
    pub attempts: u32,
    pub total_tokens: u64,
    pub search_units: u64,
    /// The scores came from expired cache entries (`stale_if_error`):
    /// nobody served them now.
    pub stale: bool,
}
