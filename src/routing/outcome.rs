//! The error a call ends with: an upstream's verdict passed back, or the
//! one error for a route whose every target failed.
//!
//! Place in the pipeline: `run::execute` calls [`client_error`] when an
//! upstream rejected the request itself (not retried, not failed over) and
//! [`exhausted`] when no target is left. Both return a [`GatewayError`]
//! whose kind says what happened; `server::http` alone turns it into a
//! status and a body (every target at its concurrency limit: 503
//! `providers_saturated` with a `Retry-After`). Must not retry, and must
//! not carry upstream secrets (error bodies are scrubbed by the providers
//! before they get here).

use std::sync::Arc;
use std::time::Duration;

use crate::api::{ErrorKind, GatewayError};
use crate::providers::UpstreamError;

/// An upstream's verdict on the request itself, passed back as is.
pub(super) fn client_error(e: UpstreamError) -> GatewayError {
    match e {
        UpstreamError::Status { status, body, .. }
        | UpstreamError::Classified { status, body, .. } => GatewayError::new(
            ErrorKind::Upstream { status, body },
            format!("The upstream rejected the request (status {status})."),
        ),
        UpstreamError::Translate(t) => GatewayError::invalid(t.to_string()).with_code(match t {
            crate::providers::translate::TranslateError::Unsupported { .. } => {
                "unsupported_feature"
            }
            _ => "invalid_request",
        }),
        other => GatewayError::new(ErrorKind::BadGateway, other.to_string()),
    }
}

/// The error for a call estimated over the context window of every target
/// it could have gone to (and no fallback took it).
pub(super) fn too_long(route: &str, estimate: u64) -> GatewayError {
    GatewayError::invalid_param(
        "messages",
        format!(
            "The request (about {estimate} tokens with its output bound) exceeds the \
             context window of every target of model `{route}`."
        ),
    )
    .with_code("context_length_exceeded")
}

/// The error for a route whose every target failed.
pub(super) fn exhausted(route: &str, failures: Vec<(Arc<str>, UpstreamError)>) -> GatewayError {
    let summary = failures
        .iter()
        .map(|(p, e)| format!("{p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!("All targets for model `{route}` failed ({summary}).");
    if failures.is_empty() {
        return GatewayError::new(
            ErrorKind::Unavailable,
            format!("Model `{route}` has no usable target."),
        )
        .with_code("no_target")
        .final_after_retries();
    }
    let all = |f: fn(&UpstreamError) -> bool| failures.iter().all(|(_, e)| f(e));
    if all(|e| matches!(e, UpstreamError::BreakerOpen)) {
        return GatewayError::new(ErrorKind::Unavailable, message)
            .with_code("circuit_open")
            .final_after_retries();
    }
    if all(|e| matches!(e, UpstreamError::Saturated | UpstreamError::BreakerOpen)) {
        // Every provider is at its concurrency limit (or down): the
        // gateway sheds the call, like a full gateway, and says so.
        return GatewayError::new(
            ErrorKind::Unavailable,
            format!(
                "Every provider of model `{route}` is at its concurrency limit; retry shortly."
            ),
        )
        .with_code("providers_saturated")
        .with_retry_after(Duration::from_secs(1));
    }
    if all(|e| {
        matches!(
            e,
            UpstreamError::RateLimited(_) | UpstreamError::BreakerOpen | UpstreamError::Saturated
        )
    }) {
        let wait = failures
            .iter()
            .filter_map(|(_, e)| match e {
                UpstreamError::RateLimited(w) => Some(*w),
                _ => None,
            })
            .min()
            .unwrap_or(Duration::from_secs(1));
        return GatewayError::rate_limited("provider", wait);
    }
    let last = &failures[failures.len() - 1].1;
    match last {
        // The others failed, the last one is full: worth a retry shortly.
        UpstreamError::Saturated => GatewayError::new(ErrorKind::Unavailable, message)
            .with_code("providers_saturated")
            .with_retry_after(Duration::from_secs(1)),
        UpstreamError::Timeout(_) => GatewayError::new(ErrorKind::GatewayTimeout, message)
            .with_code("upstream_timeout")
            .final_after_retries(),
        UpstreamError::Status {
            status: 429,
            retry_after,
            ..
        }
        | UpstreamError::Classified {
            status: 429,
            retry_after,
            ..
        } => {
            let mut e = GatewayError::new(ErrorKind::RateLimited, message)
                .with_code("upstream_rate_limited");
            e.retry_after = Some(retry_after.unwrap_or(Duration::from_secs(1)));
            e
        }
        _ => GatewayError::new(ErrorKind::BadGateway, message)
            .with_code("upstream_error")
            .final_after_retries(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturated_targets_are_shed_with_a_retry_after_and_a_rate_limit_wins() {
        let g = exhausted(
            "r",
            vec![
                ("a".into(), UpstreamError::Saturated),
                ("b".into(), UpstreamError::BreakerOpen),
            ],
        );
        assert_eq!(g.kind, ErrorKind::Unavailable);
        assert_eq!(g.code, Some("providers_saturated"));
        assert_eq!(g.retry_after, Some(Duration::from_secs(1)));
        let g = exhausted(
            "r",
            vec![
                ("a".into(), UpstreamError::Saturated),
                (
                    "b".into(),
                    UpstreamError::RateLimited(Duration::from_secs(2)),
                ),
            ],
        );
        assert_eq!(g.kind, ErrorKind::RateLimited);
        let g = exhausted(
            "r",
            vec![
                ("a".into(), UpstreamError::Timeout("body")),
                ("b".into(), UpstreamError::Saturated),
            ],
        );
        assert_eq!(g.kind, ErrorKind::Unavailable);
        assert_eq!(g.code, Some("providers_saturated"));
        assert!(
            g.message
                .contains("a: body timeout; b: provider at its concurrency limit")
        );
    }

    #[test]
    fn a_classified_429_last_is_a_429_with_its_retry_after() {
        let e = UpstreamError::Classified {
            status: 429,
            body: bytes::Bytes::from_static(b"{}"),
            retry_after: Some(Duration::from_secs(3)),
            class: crate::providers::ErrorClass {
                retryable: true,
                moves_on: true,
                trips_breaker: false,
                fallback: None,
            },
        };
        let g = exhausted("r", vec![("p".into(), e)]);
        assert_eq!(g.kind, ErrorKind::RateLimited);
        assert_eq!(g.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_classified_429_last_is_a_rate_limit_for_the_client() {
        let e = UpstreamError::Classified {
            status: 429,
            body: bytes::Bytes::new(),
            retry_after: Some(Duration::from_secs(3)),
            class: crate::providers::ErrorClass {
                retryable: true,
                moves_on: true,
                trips_breaker: false,
                fallback: None,
            },
        };
        let out = exhausted("r", vec![("p".into(), e)]);
        assert_eq!(out.kind, ErrorKind::RateLimited);
        assert_eq!(out.retry_after, Some(Duration::from_secs(3)));
    }
}
