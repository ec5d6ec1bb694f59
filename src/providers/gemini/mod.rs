//! Provider kind `gemini`: Google's Generative Language API (v1beta, native
//! `generateContent`, not its OpenAI-compatible endpoint).
//!
//! Place in the pipeline: the `gemini` provider kind. [`config`] reads its
//! keys, [`provider`] makes one upstream call per attempt; the rest is pure
//! translation between the OpenAI wire format the gateway speaks and
//! Gemini's own. One file per job:
//!
//! - [`config`]: the `kind: gemini` keys, validated at `file:line`;
//! - [`provider`]: the [`crate::providers::Provider`] (HTTP through
//!   `Upstream`, error classification into the OpenAI envelope);
//! - [`wire`]: paths relative to a base URL such as
//!   `https://generativelanguage.googleapis.com/v1beta`, and request headers
//!   (`x-goog-api-key`, marked sensitive);
//! - [`request`] with [`messages`] and [`schema`]: OpenAI chat body ->
//!   `GenerateContentRequest`;
//! - [`thinking`]: the reasoning control as `thinkingConfig`;
//! - [`response`]: `GenerateContentResponse` -> `chat.completion`;
//! - [`stream`]: `streamGenerateContent?alt=sse` events -> OpenAI chunks;
//! - [`errors`]: Gemini's `{"error": {code, message, status}}` -> retry,
//!   failover and breaker decisions;
//! - [`embed`]: embeddings through `batchEmbedContents`.
//!
//! Nothing but [`provider`] does I/O; nothing holds secrets beyond building
//! one header, or decides routing. Whatever Gemini cannot express and would
//! change the answer is refused with [`TranslateError::Unsupported`], never
//! dropped.

pub mod config;
pub mod embed;
pub mod errors;
pub mod messages;
pub mod provider;
pub mod request;
pub mod response;
pub mod schema;
pub mod stream;
pub mod thinking;
pub mod wire;

pub use config::Config;
pub use embed::{GeminiEmbedSettings, MAX_BATCH_INPUTS, embed_request, embed_response};
pub use errors::{classify_error, prompt_refusal, retry_delay};
pub use request::{GeminiChatSettings, chat_request, chat_request_ext};
pub use response::chat_response;
pub use stream::GeminiStream;
pub use wire::{chat_path, embed_path, headers};

use crate::config::{ConfigError, Env, KindSettings, ProviderSpec};
use crate::providers::translate::TranslateError;
use crate::providers::{BuildError, KindConfig};
use provider::GeminiProvider;

/// The provider kind, as named in errors.
pub const KIND: &str = "gemini";

fn unsupported(feature: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported {
        kind: KIND,
        feature: feature.into(),
    }
}

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::BadResponse(message.into())
}

/// The kind as the registry knows it: its configuration read by
/// `config`, its provider built by `provider`.
impl KindConfig for Config {
    const KIND: &'static str = KIND;
    type Provider = GeminiProvider;

    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        Config::read(settings, env)
    }

    fn build(&self, spec: &ProviderSpec) -> Result<GeminiProvider, BuildError> {
        GeminiProvider::new(self, &spec.timeouts, spec.max_response_bytes)
            .map_err(|e| BuildError::new(spec, e.to_string()))
    }
}
