//! AWS Bedrock Runtime: chat through Converse / ConverseStream, embeddings
//! through InvokeModel (Amazon Titan Text Embeddings, Cohere Embed): the
//! `bedrock` provider kind.
//!
//! Place in the pipeline: `kind: bedrock` entries are read by [`Config`]
//! (`config`), and each attempt runs through `provider`: it builds an
//! `http::Request<Bytes>` from [`base_url`] + [`converse_path`] /
//! [`invoke_path`] and the JSON of [`chat_request`] / [`embed_request`],
//! signs it with [`sign`], sends it, and feeds what comes back to
//! [`chat_response`], to an [`EventStreamDecoder`] + [`BedrockStream`]
//! (`stream_body`), to [`embed_response`] or, on a non-2xx status, to
//! [`classify_error`] (with the `x-amzn-ErrorType` header).
//!
//! Submodules: `request` + `messages` (OpenAI chat request -> Converse),
//! `response` (Converse -> `chat.completion`), `eventstream` (AWS binary
//! event-stream framing, over `aws-smithy-eventstream`), `stream` (ConverseStream events -> OpenAI chunks),
//! `errors` (error classification), `embed` (Titan and Cohere embeddings),
//! `sign` (SigV4); `config` (the kind's keys), `provider` (the HTTP calls),
//! `stream_body` (the streaming read loop).
//!
//! Must not: let the translation submodules do I/O or read the environment
//! (credentials and region arrive as values: `config` reads them once, at
//! load time), retry, or put secrets or whole bodies into error messages.

pub mod config;
pub mod embed;
pub mod errors;
pub mod eventstream;
pub mod messages;
mod provider;
pub mod request;
pub mod response;
pub mod sign;
pub mod stream;
mod stream_body;
pub mod thinking;

pub use config::Config;
pub use embed::{
    BedrockEmbedSettings, COHERE_MAX_BATCH_INPUTS, TITAN_MAX_BATCH_INPUTS, embed_request,
    embed_response, input_token_count, max_batch_inputs,
};
pub use errors::{classify_error, exception_class};
pub use eventstream::{EventMessage, EventStreamDecoder};
pub use provider::BedrockProvider;
pub use request::{BedrockChatSettings, chat_request, chat_request_ext};
pub use response::chat_response;
pub use sign::{AwsCredentials, SignError, sign};
pub use stream::BedrockStream;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::{ConfigError, Env, KindSettings, ProviderSpec};
use crate::providers::translate::TranslateError;
use crate::providers::{BuildError, KindConfig};

/// The provider kind, as named in `TranslateError::Unsupported`.
pub const KIND: &str = "bedrock";

pub(crate) fn unsupported(feature: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported {
        kind: KIND,
        feature: feature.into(),
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// Everything but RFC 3986 unreserved characters is escaped: model ids hold
/// `:` (`anthropic.claude-3-haiku-20240307-v1:0`) and ARNs hold `/`.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `https://bedrock-runtime.{region}.amazonaws.com`.
pub fn base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// `/model/{modelId}/converse` or `/model/{modelId}/converse-stream`.
pub fn converse_path(model_id: &str, stream: bool) -> String {
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!(
        "/model/{}/{op}",
        utf8_percent_encode(model_id, PATH_SEGMENT)
    )
}

/// `/model/{modelId}/invoke`.
pub fn invoke_path(model_id: &str) -> String {
    format!(
        "/model/{}/invoke",
        utf8_percent_encode(model_id, PATH_SEGMENT)
    )
}

/// The kind as the registry knows it: its configuration read by
/// `config`, its provider built by `provider`.
impl KindConfig for Config {
    const KIND: &'static str = KIND;
    type Provider = BedrockProvider;

    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        Config::read(settings, env)
    }

    fn build(&self, spec: &ProviderSpec) -> Result<BedrockProvider, BuildError> {
        BedrockProvider::new(self, &spec.timeouts, spec.max_response_bytes)
            .map_err(|e| BuildError::new(spec, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_model_ids() {
        assert_eq!(
            converse_path("anthropic.claude-3-haiku-20240307-v1:0", false),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        assert_eq!(
            converse_path("us.amazon.nova-lite-v1:0", true),
            "/model/us.amazon.nova-lite-v1%3A0/converse-stream"
        );
        assert_eq!(
            invoke_path("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc"),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aprovisioned-model%2Fabc/invoke"
        );
        assert_eq!(
            base_url("eu-west-3"),
            "https://bedrock-runtime.eu-west-3.amazonaws.com"
        );
    }
}
