//! Upstream providers: one file per kind, behind the [`Provider`] enum.
//!
//! Place in the pipeline: the last step. `routing` picks a target and calls
//! [`Provider::chat`] or [`Provider::embed`] once per attempt. A provider
//! makes exactly one upstream call per method call and enforces its own
//! timeouts (connect, first byte, total). It must not retry, fail over, cache
//! or count metrics: those belong to the layers above.

pub mod anthropic;
pub mod bedrock;
mod body;
pub mod gemini;
mod mock;
mod openai;
pub mod scrub;
pub mod translate;

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value};

use crate::api::chat::ChatRequest;
use crate::api::embeddings::EmbedReply;
use crate::config::{ProviderKind, ProviderSpec};

pub use mock::MockProvider;
pub use openai::OpenAiProvider;

/// One attempt's failure.
#[derive(Debug, Clone)]
pub enum UpstreamError {
    Connect(String),
    /// Which deadline passed: `connect`, `first_byte` or `total`.
    Timeout(&'static str),
    Status {
        status: u16,
        body: Bytes,
        retry_after: Option<Duration>,
    },
    /// The upstream answered something this gateway cannot use.
    Protocol(String),
    /// Not tried: the provider's circuit breaker is open.
    BreakerOpen,
    /// Not tried: the provider's own rate limit is spent.
    RateLimited(Duration),
    /// The answer was larger than the provider's `max_response_bytes`.
    TooLarge(u64),
}

impl UpstreamError {
    /// Worth another attempt on the same target.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Connect(_) | UpstreamError::Timeout(_) | UpstreamError::Protocol(_) => {
                true
            }
            UpstreamError::Status { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            UpstreamError::BreakerOpen
            | UpstreamError::RateLimited(_)
            | UpstreamError::TooLarge(_) => false,
        }
    }

    /// Another target may succeed where this one failed. False for requests
    /// the upstream rejected as malformed: those go back to the client.
    pub fn moves_on(&self) -> bool {
        match self {
            UpstreamError::Status { status, .. } => {
                self.is_retryable() || matches!(status, 401 | 403 | 404)
            }
            _ => true,
        }
    }

    /// Counts as a failure for the provider's circuit breaker; 429s only
    /// when the provider's breaker says so (`count_rate_limits`).
    pub fn trips_breaker(&self, count_rate_limits: bool) -> bool {
        match self {
            UpstreamError::Connect(_) | UpstreamError::Timeout(_) | UpstreamError::Protocol(_) => {
                true
            }
            UpstreamError::Status { status: 429, .. } => count_rate_limits,
            UpstreamError::Status { status, .. } => *status >= 500,
            UpstreamError::BreakerOpen
            | UpstreamError::RateLimited(_)
            | UpstreamError::TooLarge(_) => false,
        }
    }

    /// An upstream 429 (its own rate limit, not this gateway's).
    pub fn is_upstream_rate_limit(&self) -> bool {
        matches!(self, UpstreamError::Status { status: 429, .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Metric label for `switchyard_upstream_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect_error",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Protocol(_) => "protocol_error",
            UpstreamError::Status { status: 429, .. } => "status_429",
            UpstreamError::Status { status, .. } if *status >= 500 => "status_5xx",
            UpstreamError::Status { .. } => "status_4xx",
            UpstreamError::BreakerOpen => "breaker_open",
            UpstreamError::RateLimited(_) => "rate_limited",
            UpstreamError::TooLarge(_) => "too_large",
        }
    }

    /// Short description for error messages (never contains secrets).
    pub fn describe(&self) -> String {
        match self {
            UpstreamError::Connect(m) => format!("connection failed: {m}"),
            UpstreamError::Timeout(which) => format!("{which} timeout"),
            UpstreamError::Status { status, .. } => format!("status {status}"),
            UpstreamError::Protocol(m) => format!("bad upstream response: {m}"),
            UpstreamError::BreakerOpen => "circuit breaker open".into(),
            UpstreamError::RateLimited(_) => "provider rate limit reached".into(),
            UpstreamError::TooLarge(max) => format!("answer larger than {max} bytes"),
        }
    }
}

/// A chat answer: a whole JSON body, or SSE bytes as they arrive.
pub enum ChatReply {
    Full(Bytes),
    Stream(BoxStream<'static, Result<Bytes, UpstreamError>>),
}

pub enum Provider {
    OpenAi(OpenAiProvider),
    Mock(MockProvider),
}

impl Provider {
    pub fn build(spec: &ProviderSpec) -> Result<Provider, String> {
        Ok(match &spec.kind {
            ProviderKind::OpenAi(o) => Provider::OpenAi(OpenAiProvider::new(
                o,
                &spec.timeouts,
                spec.max_response_bytes,
            )?),
            ProviderKind::Mock(m) => {
                Provider::Mock(MockProvider::new(&spec.name, m.clone(), &spec.timeouts))
            }
        })
    }

    /// One chat attempt for `request`, sent as `model` upstream.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        match self {
            Provider::OpenAi(p) => p.chat(request, model, stream).await,
            Provider::Mock(p) => p.chat(request, model, stream).await,
        }
    }

    pub async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        match self {
            Provider::OpenAi(p) => p.embed(model, inputs, extra).await,
            Provider::Mock(p) => p.embed(model, inputs, extra).await,
        }
    }
}

/// Parses `retry-after-ms` (OpenAI) or `retry-after` in seconds.
pub fn parse_retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let secs = get("retry-after").and_then(|v| v.trim().parse::<f64>().ok())?;
    (0.0..86_400.0)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}
