//! What can go wrong translating between the OpenAI wire format (what
//! clients speak) and a provider's native one.
//!
//! Place in the pipeline: returned by the request, response and stream
//! translators of the non-OpenAI provider kinds. `routing` treats
//! [`TranslateError::Unsupported`] and [`TranslateError::InvalidRequest`] as
//! the client's problem (400, not retried, no failover to the same error
//! elsewhere is pointless but allowed) and [`TranslateError::BadResponse`] as
//! a protocol failure of the upstream (retryable, trips the breaker). Must not
//! carry secrets or whole bodies in its messages.

/// A translation failure; the message is safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client asked for a feature this provider kind cannot express.
    #[error("{feature} is not supported by provider kind `{kind}`")]
    Unsupported { kind: &'static str, feature: String },
    /// The request is malformed in a way only the translation notices.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The upstream answered something that does not follow its own API.
    #[error("malformed upstream response: {0}")]
    BadResponse(String),
}
