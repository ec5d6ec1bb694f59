//! Provider kind `cohere`: Cohere's API v2 (`https://api.cohere.com`), its
//! native Embed and Chat endpoints.
//!
//! Place in the pipeline: called by `routing` for one attempt, like every
//! kind. Pure translation between the OpenAI wire format and Cohere's own
//! lives in one file per job, the HTTP call in [`provider`]:
//!
//! - [`embed`]: `/v1/embeddings` <-> `POST /v2/embed` (`texts`,
//!   `input_type`, `embedding_types: ["float"]`, `truncate`), at most
//!   [`embed::MAX_BATCH_INPUTS`] texts per call;
//! - [`request`], [`response`], [`stream`]: `/v1/chat/completions` <->
//!   `POST /v2/chat` (JSON and SSE);
//! - [`rerank`]: `/v1/rerank` <-> `POST /v2/rerank` (`query`, `documents`,
//!   `max_tokens_per_doc`; scores back in document order);
//! - [`errors`]: Cohere's `{"message": ...}` errors by status;
//! - [`config`]: the kind's keys.
//!
//! Must not retry, fail over or log the key; every translation failure is a
//! [`TranslateError`] whose message holds neither secrets nor whole bodies.

pub mod config;
pub mod embed;
pub mod errors;
mod provider;
pub mod request;
pub mod rerank;
pub mod response;
pub mod stream;

pub use config::Config;
pub use embed::{CohereEmbedSettings, MAX_BATCH_INPUTS, embed_request, embed_response};
pub use errors::classify_error;
pub use provider::CohereProvider;
pub use request::{CohereChatSettings, chat_request, chat_request_ext};
pub use rerank::{rerank_request, rerank_response};
pub use response::chat_response;
pub use stream::CohereStream;

use crate::config::{ConfigError, Env, KindSettings, ProviderSpec};
use crate::providers::translate::TranslateError;
use crate::providers::{BuildError, KindConfig};

/// The name in `kind:`.
pub const KIND: &str = "cohere";

pub(crate) fn unsupported(feature: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported {
        kind: KIND,
        feature: feature.into(),
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

pub(crate) fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::BadResponse(message.into())
}

/// The kind as the registry knows it: its configuration read by
/// `config`, its provider built by `provider`.
impl KindConfig for Config {
    const KIND: &'static str = KIND;
    type Provider = CohereProvider;

    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        Config::read(settings, env)
    }

    fn build(&self, spec: &ProviderSpec) -> Result<CohereProvider, BuildError> {
        CohereProvider::new(self, &spec.timeouts, spec.max_response_bytes)
            .map_err(|e| BuildError::new(spec, e.to_string()))
    }
}
