//! The `cohere` provider: one Cohere API v2 call per attempt.
//!
//! Place in the pipeline: called by `routing` for one attempt. Translates
//! the OpenAI request ([`super::request`], [`super::embed`],
//! [`super::rerank`]), sends it to `{base_url}/v2/chat`, `/v2/embed` or
//! `/v2/rerank` with `Authorization: Bearer` (marked
//! sensitive) through [`Upstream`] (timeouts, size cap, secret scrubbing),
//! and translates the answer back ([`super::response`], [`super::stream`]
//! through `translated_sse`, honouring `stream_options.include_usage`).
//! Non-success answers are classified by [`classify_error`] into
//! `UpstreamError::Classified` with an OpenAI error envelope (retry-after
//! from the `retry-after` header). Must not retry, fail over or log the key.

use crate::providers::upstream::SetupError;
use std::sync::Arc;

use crate::providers::upstream::expect_event_stream;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::config::{CAPABILITIES, Config};
use super::embed::{MAX_BATCH_INPUTS, embed_request, embed_response};
use super::errors::classify_error;
use super::request::chat_request_ext;
use super::rerank::{rerank_request, rerank_response};
use super::response::chat_response;
use super::stream::CohereStream;
use crate::api::chat::ChatRequest;
use crate::api::embeddings::EmbedReply;
use crate::api::rerank::RerankReply;
use crate::config::Timeouts;
use crate::providers::body::Limits;
use crate::providers::client::Response;
use crate::providers::scrub::Scrubber;
use crate::providers::upstream::{Failed, Upstream, translated_sse};
use crate::providers::{Capabilities, ChatReply, Provider, UpstreamError, parse_retry_after};

#[derive(Debug)]
pub struct CohereProvider {
    upstream: Upstream,
    config: Config,
    headers: http::HeaderMap,
}

impl CohereProvider {
    pub(super) fn new(
        config: &Config,
        timeouts: &Timeouts,
        max_response_bytes: u64,
    ) -> Result<Self, SetupError> {
        let mut headers = http::HeaderMap::new();
        if let Some(key) = &config.api_key {
            let mut value = http::HeaderValue::try_from(format!("Bearer {}", key.expose()))
                .map_err(|_| SetupError::Header("the API key"))?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let secrets = config.api_key.iter().map(|k| k.expose());
        Ok(CohereProvider {
            upstream: Upstream::new(timeouts, max_response_bytes, secrets)?,
            config: config.clone(),
            headers,
        })
    }

    async fn send(&self, path: &str, body: &Value) -> Result<(Response, Limits), UpstreamError> {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let request = self
            .upstream
            .client()
            .post(format!("{}{path}", self.config.base_url))
            .headers(&self.headers)
            .body(bytes);
        self.upstream.send_classified(request, classify).await
    }
}

/// A Cohere error as the client sees it: the OpenAI envelope with the
/// class's status and type, Cohere's message.
fn classify(failed: Failed, scrubber: &Scrubber) -> UpstreamError {
    classify_error(failed.status, &failed.body)
        .into_error(parse_retry_after(&failed.headers), scrubber)
}

#[async_trait::async_trait]
impl Provider for CohereProvider {
    fn open_connections(&self) -> Option<usize> {
        Some(self.upstream.open_connections())
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn ext_support(&self, request: &ChatRequest, _model: &str) -> crate::providers::ExtSupport {
        crate::providers::ExtSupport {
            reasoning: false,
            top_k: request.top_k().is_some(),
            serial_tool_calls: false,
        }
    }

    fn max_batch_inputs(&self, _model: &str) -> usize {
        MAX_BATCH_INPUTS
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let mut body = chat_request_ext(&request.body, &request.ext, model, &self.config.chat)
            .map_err(UpstreamError::Translate)?;
        body["stream"] = Value::Bool(stream);
        let (response, limits) = self.send("/v2/chat", &body).await?;
        if !stream {
            let bytes = self.upstream.read_json(response, &limits).await?;
            let answer = chat_response(&bytes, model).map_err(UpstreamError::Translate)?;
            return Ok(ChatReply::whole(Bytes::from(answer.to_string())));
        }
        expect_event_stream(&response)?;
        let include_usage = request.include_usage();
        Ok(ChatReply::Stream(translated_sse(
            response,
            limits,
            CohereStream::new(model, include_usage),
        )))
    }

    async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        let body = embed_request(inputs, model, extra, &self.config.embed)
            .map_err(UpstreamError::Translate)?;
        let (response, limits) = self.send("/v2/embed", &body).await?;
        let bytes = self.upstream.read_json(response, &limits).await?;
        embed_response(&bytes, inputs.len()).map_err(UpstreamError::Translate)
    }

    async fn rerank(
        &self,
        model: &str,
        query: &str,
        documents: &[Arc<str>],
        extra: &Map<String, Value>,
    ) -> Result<RerankReply, UpstreamError> {
        let body =
            rerank_request(model, query, documents, extra).map_err(UpstreamError::Translate)?;
        let (response, limits) = self.send("/v2/rerank", &body).await?;
        let bytes = self.upstream.read_json(response, &limits).await?;
        rerank_response(&bytes, documents.len()).map_err(UpstreamError::Translate)
    }
}
