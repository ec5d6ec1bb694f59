//! Provider kind `anthropic`: translation between the OpenAI wire format and
//! the Anthropic Messages API (`POST /v1/messages`).
//!
//! Place in the pipeline: pure functions and one stream state machine, called
//! by [`provider::AnthropicProvider`] around its single upstream call:
//! [`chat_request`] before sending, [`chat_response`] or [`AnthropicStream`]
//! on success, [`classify_error`] on a non-2xx answer. Nothing here does I/O,
//! retries, fails over or reads configuration files; nothing here may log or
//! echo the API key (only [`headers`] sees it, and marks it sensitive).
//!
//! Anthropic has no embeddings endpoint (its docs point to third-party
//! embedders), so this kind offers no `embed_request` / `embed_response`.
//!
//! Submodules:
//! - [`config`]: the `kind: anthropic` policy keys ([`Config`]).
//! - [`provider`]: the provider itself (one HTTP call per attempt).
//! - [`messages`]: OpenAI `messages` -> Anthropic `system` + alternating turns.
//! - [`content`]: content parts -> text and image blocks.
//! - [`request`]: the whole request body (sampling, tools, tool_choice, ...).
//! - [`tools`]: `tools` and `tool_choice`.
//! - [`thinking`]: the reasoning control as `thinking`.
//! - [`response`]: non-streaming `Message` -> `chat.completion`.
//! - [`events`]: the streaming event types.
//! - [`stream`]: SSE events -> `chat.completion.chunk` frames.
//! - [`error`]: upstream error bodies -> the shared
//!   [`Classification`](crate::providers::Classification).

mod config;
pub mod content;
pub mod error;
pub mod events;
pub mod messages;
mod native;
mod provider;
pub mod request;
pub mod response;
pub mod stream;
pub mod thinking;
pub mod tools;

pub use config::Config;
pub use error::{classify_error, classify_error_type};
pub use request::{chat_request, chat_request_ext};
pub use response::chat_response;
pub use stream::AnthropicStream;

use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::config::{ConfigError, Env, KindSettings, ProviderSpec};
use crate::providers::{BuildError, KindConfig};
use provider::AnthropicProvider;

/// The provider kind name, as written in policy files and in
/// [`crate::providers::translate::TranslateError::Unsupported`].
pub const KIND: &str = "anthropic";

/// The `anthropic-version` header value this translation is written for.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// Path of the Messages API under the provider's base URL
/// (`https://api.anthropic.com`).
pub const MESSAGES_PATH: &str = "/v1/messages";

/// Per-provider knobs for chat translation.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicChatSettings {
    /// `max_tokens` is required by Anthropic; used when the client sent
    /// neither `max_completion_tokens` nor `max_tokens`.
    pub default_max_tokens: u32,
    /// Send `response_format: json_schema` as Anthropic structured outputs
    /// (`output_config.format`) and pass `tools[].function.strict`. Only
    /// Claude 4.5 and later models accept these, so it is off by default and
    /// `json_schema` is then refused as unsupported.
    pub structured_outputs: bool,
}

impl Default for AnthropicChatSettings {
    fn default() -> Self {
        AnthropicChatSettings {
            default_max_tokens: 4096,
            structured_outputs: false,
        }
    }
}

/// The request headers Anthropic requires: `x-api-key` (marked sensitive so
/// it never shows in debug output), `anthropic-version` and
/// `content-type: application/json`. A key or version that is not a valid
/// header value is left out (the upstream then answers 401 / 400), since
/// this function cannot fail and must not echo the key.
pub fn headers(api_key: &str, version: &str) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(3);
    if let Ok(mut key) = HeaderValue::from_str(api_key) {
        key.set_sensitive(true);
        h.insert("x-api-key", key);
    }
    if let Ok(v) = HeaderValue::from_str(version) {
        h.insert("anthropic-version", v);
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h
}

/// The kind as the registry knows it: its configuration read by
/// `config`, its provider built by `provider`.
impl KindConfig for Config {
    const KIND: &'static str = KIND;
    type Provider = AnthropicProvider;

    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        Config::read(settings, env)
    }

    fn build(&self, spec: &ProviderSpec) -> Result<AnthropicProvider, BuildError> {
        AnthropicProvider::new(self, &spec.timeouts, spec.max_response_bytes)
            .map_err(|e| BuildError::new(spec, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_key_version_and_json() {
        let h = headers("sk-ant-secret", DEFAULT_VERSION);
        assert_eq!(h["x-api-key"], "sk-ant-secret");
        assert!(h["x-api-key"].is_sensitive());
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert_eq!(h["content-type"], "application/json");
        assert!(!format!("{h:?}").contains("sk-ant-secret"));
    }

    #[test]
    fn invalid_header_values_are_left_out() {
        let h = headers("bad\nkey", "2023-06-01");
        assert!(h.get("x-api-key").is_none());
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn settings_default() {
        let s = AnthropicChatSettings::default();
        assert_eq!(s.default_max_tokens, 4096);
        assert!(!s.structured_outputs);
    }
}
