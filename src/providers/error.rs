//! What one upstream attempt can fail with, and how each failure is treated.
//!
//! Place in the pipeline: returned by every provider for one attempt; read by
//! `routing` (retry? fail over? trip the breaker?) and turned into the
//! client's error there. Classification comes from the failure itself; a
//! provider kind that knows better (Anthropic's `overloaded_error`, Bedrock's
//! `ThrottlingException`) says so through [`UpstreamError::Classified`].
//! Must not carry secrets: error bodies are scrubbed before they get here.

use std::time::Duration;

use bytes::Bytes;

use super::translate::TranslateError;

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
    /// An upstream error its provider kind classified from its own signals;
    /// `body` is already in the OpenAI error envelope.
    Classified {
        status: u16,
        body: Bytes,
        retry_after: Option<Duration>,
        class: ErrorClass,
    },
    /// The request cannot be expressed for this provider, or is malformed in
    /// a way only the translation notices: the client's problem.
    Translate(TranslateError),
    /// The provider kind cannot do this at all (e.g. embeddings on a
    /// chat-only kind); the route skips such targets.
    Unsupported(&'static str),
}

/// How a provider kind says its own error is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorClass {
    pub retryable: bool,
    pub moves_on: bool,
    pub trips_breaker: bool,
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
            UpstreamError::Classified { class, .. } => class.retryable,
            // The upstream broke its own protocol: as retryable as `Protocol`.
            UpstreamError::Translate(TranslateError::BadResponse(_)) => true,
            UpstreamError::BreakerOpen
            | UpstreamError::RateLimited(_)
            | UpstreamError::TooLarge(_)
            | UpstreamError::Translate(_)
            | UpstreamError::Unsupported(_) => false,
        }
    }

    /// Another target may succeed where this one failed. False for requests
    /// the upstream rejected as malformed: those go back to the client.
    pub fn moves_on(&self) -> bool {
        match self {
            UpstreamError::Status { status, .. } => {
                self.is_retryable() || matches!(status, 401 | 403 | 404)
            }
            UpstreamError::Classified { class, .. } => class.moves_on,
            UpstreamError::Translate(TranslateError::BadResponse(_)) => true,
            UpstreamError::Translate(_) => false,
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
            UpstreamError::Status { status: 429, .. }
            | UpstreamError::Classified { status: 429, .. } => count_rate_limits,
            UpstreamError::Status { status, .. } => *status >= 500,
            UpstreamError::Classified { class, .. } => class.trips_breaker,
            UpstreamError::Translate(TranslateError::BadResponse(_)) => true,
            UpstreamError::BreakerOpen
            | UpstreamError::RateLimited(_)
            | UpstreamError::TooLarge(_)
            | UpstreamError::Translate(_)
            | UpstreamError::Unsupported(_) => false,
        }
    }

    /// An upstream 429 (its own rate limit, not this gateway's).
    pub fn is_upstream_rate_limit(&self) -> bool {
        matches!(
            self,
            UpstreamError::Status { status: 429, .. }
                | UpstreamError::Classified { status: 429, .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Status { retry_after, .. }
            | UpstreamError::Classified { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Metric label for `switchyard_upstream_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect_error",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Protocol(_)
            | UpstreamError::Translate(TranslateError::BadResponse(_)) => "protocol_error",
            UpstreamError::Status { status: 429, .. }
            | UpstreamError::Classified { status: 429, .. } => "status_429",
            UpstreamError::Status { status, .. } | UpstreamError::Classified { status, .. }
                if *status >= 500 =>
            {
                "status_5xx"
            }
            UpstreamError::Status { .. } | UpstreamError::Classified { .. } => "status_4xx",
            UpstreamError::BreakerOpen => "breaker_open",
            UpstreamError::RateLimited(_) => "rate_limited",
            UpstreamError::TooLarge(_) => "too_large",
            UpstreamError::Translate(_) => "invalid_request",
            UpstreamError::Unsupported(_) => "unsupported",
        }
    }

    /// Short description for error messages (never contains secrets).
    pub fn describe(&self) -> String {
        match self {
            UpstreamError::Connect(m) => format!("connection failed: {m}"),
            UpstreamError::Timeout(which) => format!("{which} timeout"),
            UpstreamError::Status { status, .. } | UpstreamError::Classified { status, .. } => {
                format!("status {status}")
            }
            UpstreamError::Protocol(m) => format!("bad upstream response: {m}"),
            UpstreamError::BreakerOpen => "circuit breaker open".into(),
            UpstreamError::RateLimited(_) => "provider rate limit reached".into(),
            UpstreamError::TooLarge(max) => format!("answer larger than {max} bytes"),
            UpstreamError::Translate(e) => e.to_string(),
            UpstreamError::Unsupported(what) => format!("{what} is not supported"),
        }
    }
}
