//! Provider kind `azure`: Azure OpenAI (deployments of OpenAI models on an
//! Azure resource, `https://<resource>.openai.azure.com`).
//!
//! Place in the pipeline: called by `routing` for one attempt, like every
//! kind. The wire format is OpenAI's, so bodies are shared with the `openai`
//! kind through [`super::openai_wire`]; what differs lives here:
//!
//! - [`config`]: the kind's keys (`endpoint`, `api_key_env`, `api_version`,
//!   `deployments`) and the URL of a deployment;
//! - [`provider`]: one HTTP call per attempt with the `api-key` header;
//! - [`errors`]: Azure's content-filter refusal, passed back as a `400`;
//! - [`stream`]: the SSE stream, passed on chunk by chunk without Azure's
//!   content-filter annotations that are not OpenAI chunks.
//!
//! Must not retry, fail over or log the key.

pub mod config;
pub mod errors;
mod provider;
pub mod stream;

pub use config::Config;
pub use provider::AzureProvider;

use crate::config::{ConfigError, Env, KindSettings, ProviderSpec};
use crate::providers::{BuildError, KindConfig};

/// The kind as the registry knows it: its configuration read by
/// `config`, its provider built by `provider`.
impl KindConfig for Config {
    const KIND: &'static str = config::KIND;
    type Provider = AzureProvider;

    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        Config::read(settings, env)
    }

    fn build(&self, spec: &ProviderSpec) -> Result<AzureProvider, BuildError> {
        AzureProvider::new(self, &spec.timeouts, spec.max_response_bytes)
            .map_err(|e| BuildError::new(spec, e.to_string()))
    }
}
