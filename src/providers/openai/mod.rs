//! Provider kind `openai`: any OpenAI-compatible HTTP API.
//!
//! Place in the pipeline: called by `routing` for one attempt. Sends
//! `POST {base_url}/chat/completions`, `/embeddings` or `/rerank` (vLLM's
//! Jina/Cohere-compatible rerank) with the provider's key
//! (read from the environment at load time). Applies the connect timeout (in
//! the client), the first-byte timeout (until response headers), then the
//! body limits of [`super::body`]. A `200` only counts as an answer when it
//! is one: JSON with `choices` (chat), JSON with every vector (embeddings),
//! `text/event-stream` ending in `[DONE]` (streams); anything else is a
//! retryable protocol failure, so it is never cached. Streams are forwarded in
//! whole events only, so a stream that breaks never leaves a torn event
//! behind. Every body is scrubbed of the provider's secrets as it is read
//! (`upstream`). Must not log or echo the API key.
//!
//! Files: `config` (the policy's `kind: openai` settings), `provider` (the
//! requests and the answers' checks), `whole_events` (streams re-cut at
//! event boundaries).

mod config;
mod provider;
mod whole_events;

pub(super) use config::Config;
pub(super) use provider::OpenAiProvider;

use crate::config::{ConfigError, Env, KindSettings, ProviderSpec};
use crate::providers::{BuildError, KindConfig};

/// The kind as the registry knows it: its configuration read by
/// `config`, its provider built by `provider`.
impl KindConfig for Config {
    const KIND: &'static str = config::KIND;
    type Provider = OpenAiProvider;

    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        Config::read(settings, env)
    }

    fn build(&self, spec: &ProviderSpec) -> Result<OpenAiProvider, BuildError> {
        OpenAiProvider::new(self, spec)
    }
}
