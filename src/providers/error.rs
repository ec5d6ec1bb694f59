//! What one upstream attempt can fail with, and how each failure is treated.
//!
//! Place in the pipeline: returned by every provider for one attempt; read by
//! `routing` (retry? fail over? trip the breaker?) and turned into the
//! client's error there. Classification comes from the failure itself; a
//! provider kind that knows better (Anthropic's `overloaded_error`, Bedrock's
//! `ThrottlingException`) says so through [`UpstreamError::Classified`]:
//! its own mapping table gives a [`Classification`] (the one type every
//! kind uses), and [`Classification::into_error`] writes the OpenAI envelope
//! (through `api::error`) and scrubs it. Upstream messages are cut by the
//! one rule, [`truncate`]. Must not carry secrets: error bodies are
//! scrubbed before they get here, classified bodies once more after.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::scrub::Scrubber;
use super::translate::TranslateError;
use crate::api::error::envelope_with;
pub use crate::config::FallbackClass;

/// One attempt's failure. Its `Display` is the short description used in
/// client messages and logs (never contains secrets).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("connection failed: {0}")]
    Connect(String),
    /// Which deadline passed: `connect`, `first_byte` or `total`.
    #[error("{0} timeout")]
    Timeout(&'static str),
    #[error("status {status}")]
    Status {
        status: u16,
        body: Bytes,
        retry_after: Option<Duration>,
    },
    /// The upstream answered something this gateway cannot use.
    #[error("bad upstream response: {0}")]
    Protocol(String),
    /// Not tried: the provider's circuit breaker is open.
    #[error("circuit breaker open")]
    BreakerOpen,
    /// Not tried: the provider's own rate limit is spent.
    #[error("provider rate limit reached")]
    RateLimited(Duration),
    /// Not tried: the provider is at its concurrency limit (its bulkhead).
    #[error("provider at its concurrency limit")]
    Saturated,
    /// The answer was larger than the provider's `max_response_bytes`.
    #[error("answer larger than {0} bytes")]
    TooLarge(u64),
    /// An upstream error its provider kind classified from its own signals;
    /// `body` is already in the OpenAI error envelope.
    #[error("status {status}")]
    Classified {
        status: u16,
        body: Bytes,
        retry_after: Option<Duration>,
        class: ErrorClass,
    },
    /// The request cannot be expressed for this provider, or is malformed in
    /// a way only the translation notices: the client's problem.
    #[error(transparent)]
    Translate(TranslateError),
    /// The provider kind cannot do this at all (e.g. embeddings on a
    /// chat-only kind); the route skips such targets.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
}

/// How a provider kind says its own error is to be treated: what `routing`
/// reads from [`UpstreamError::Classified`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorClass {
    pub retryable: bool,
    pub moves_on: bool,
    pub trips_breaker: bool,
    /// The class a route can name a fallback for (context window, content
    /// policy, quota), when the kind recognised one.
    pub fallback: Option<FallbackClass>,
}

/// One row of a kind's mapping table: `(retryable, moves_on,
/// trips_breaker, openai_status, openai_type)`.
pub type Verdict = (bool, bool, bool, u16, &'static str);

/// Longest upstream message kept, in bytes, the `...` of a cut included.
/// The smallest of the limits the kinds had (Bedrock's 500; Anthropic's
/// 512 + `...`, Cohere's 1000, Gemini's 500 characters).
pub const MAX_MESSAGE: usize = 500;

const CUT: &str = "...";

/// `text` as kept in an error: whole when it fits in [`MAX_MESSAGE`] bytes,
/// else cut on a char boundary and ended with `...`.
pub fn truncate(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_string();
    }
    let end = text.floor_char_boundary(MAX_MESSAGE - CUT.len());
    format!("{}{CUT}", &text[..end])
}

/// One upstream error as its provider kind judged it, from the kind's own
/// signals (status, error type, message): how `routing` treats it and what
/// the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Worth another attempt on the same target (after backoff).
    pub retryable: bool,
    /// Another target may succeed where this one failed.
    pub moves_on: bool,
    /// Counts as a failure for the target's circuit breaker.
    pub trips_breaker: bool,
    /// Status for the client when this error is the final answer.
    pub openai_status: u16,
    /// OpenAI error `type` for the client.
    pub openai_type: &'static str,
    /// The envelope's `code`: the provider's own error name, when it gave one.
    pub code: Option<String>,
    /// The provider's message text, cut by [`truncate`]; never the whole body.
    pub message: String,
    /// The envelope's `param`, when the provider named one.
    pub param: Option<String>,
    /// More members of the envelope's `error` object (Azure's `innererror`).
    pub extra: Map<String, Value>,
    /// The class a route can name a fallback for, when recognised.
    pub fallback: Option<FallbackClass>,
}

impl Classification {
    /// `verdict` (a row of the kind's table) with the provider's `message`.
    pub fn new(verdict: Verdict, message: &str) -> Self {
        let (retryable, moves_on, trips_breaker, openai_status, openai_type) = verdict;
        Classification {
            retryable,
            moves_on,
            trips_breaker,
            openai_status,
            openai_type,
            code: None,
            message: truncate(message),
            param: None,
            extra: Map::new(),
            fallback: None,
        }
    }

    /// Says which fallback class the error is (see [`FallbackClass`]).
    pub fn with_fallback(mut self, class: Option<FallbackClass>) -> Self {
        self.fallback = class;
        self
    }

    pub fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    /// What `routing` reads.
    pub fn class(&self) -> ErrorClass {
        ErrorClass {
            retryable: self.retryable,
            moves_on: self.moves_on,
            trips_breaker: self.trips_breaker,
            fallback: self.fallback,
        }
    }

    /// [`UpstreamError::Classified`] with the OpenAI error envelope as its
    /// body, run through the provider's `scrubber` (a message decoded from
    /// JSON escapes may show what the raw body hid).
    pub fn into_error(self, retry_after: Option<Duration>, scrubber: &Scrubber) -> UpstreamError {
        let (param, code) = (self.param.as_deref(), self.code.as_deref());
        let body = envelope_with(&self.message, self.openai_type, param, code, &self.extra);
        UpstreamError::Classified {
            status: self.openai_status,
            body: scrubber.scrub(body),
            retry_after,
            class: self.class(),
        }
    }
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
            | UpstreamError::Saturated
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
            | UpstreamError::Saturated
            | UpstreamError::TooLarge(_)
            | UpstreamError::Translate(_)
            | UpstreamError::Unsupported(_) => false,
        }
    }

    /// The class of error a route can name a fallback for, when the
    /// provider kind recognised one.
    pub fn fallback_class(&self) -> Option<FallbackClass> {
        match self {
            UpstreamError::Classified { class, .. } => class.fallback,
            _ => None,
        }
    }

    /// The attempt ran into one of the provider's timeouts: it failed
    /// slowly, so another target is tried before this one again.
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout(_))
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
            UpstreamError::Saturated => "saturated",
            UpstreamError::TooLarge(_) => "too_large",
            UpstreamError::Translate(_) => "invalid_request",
            UpstreamError::Unsupported(_) => "unsupported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_short_description() {
        let status = |status| UpstreamError::Status {
            status,
            body: Bytes::new(),
            retry_after: None,
        };
        let cases = [
            (
                UpstreamError::Connect("refused".into()),
                "connection failed: refused",
            ),
            (UpstreamError::Timeout("first_byte"), "first_byte timeout"),
            (status(503), "status 503"),
            (
                UpstreamError::Protocol("x".into()),
                "bad upstream response: x",
            ),
            (UpstreamError::BreakerOpen, "circuit breaker open"),
            (
                UpstreamError::RateLimited(Duration::ZERO),
                "provider rate limit reached",
            ),
            (
                UpstreamError::Saturated,
                "provider at its concurrency limit",
            ),
            (UpstreamError::TooLarge(10), "answer larger than 10 bytes"),
            (
                UpstreamError::Translate(TranslateError::BadResponse("y".into())),
                "malformed upstream response: y",
            ),
            (
                UpstreamError::Unsupported("rerank"),
                "rerank is not supported",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn truncate_cuts_long_messages_on_a_char_boundary() {
        assert_eq!(truncate("short"), "short");
        let exact = "a".repeat(MAX_MESSAGE);
        assert_eq!(truncate(&exact), exact);
        let cut = truncate(&"é".repeat(MAX_MESSAGE));
        assert!(cut.len() <= MAX_MESSAGE && cut.ends_with("...") && cut.starts_with("éé"));
    }

    #[test]
    fn into_error_writes_a_scrubbed_envelope() {
        let key = "sk-test-ABCDEFGHIJKLMNOP";
        let class = Classification::new(
            (true, true, false, 429, "rate_limit_error"),
            &format!("slow down {key}"),
        )
        .with_code(Some("throttled".into()));
        let e = class.into_error(Some(Duration::from_secs(2)), &Scrubber::new([key]));
        assert!(e.is_upstream_rate_limit() && e.is_retryable() && e.moves_on());
        assert!(!e.trips_breaker(false));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let UpstreamError::Classified { body, .. } = &e else {
            panic!("{e:?}")
        };
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "slow down ***", "type": "rate_limit_error",
                                         "param": null, "code": "throttled"}})
        );
    }
}
