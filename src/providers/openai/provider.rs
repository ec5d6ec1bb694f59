//! The `openai` provider: one attempt's request to an OpenAI-compatible
//! server and the checks of its answer.
//!
//! Place in the pipeline: called by `routing` for one attempt, through
//! [`Provider`]. Builds the headers and URLs once (at build time), sends
//! through `upstream` (timeouts, body limits, scrubbing) and reads the
//! answer as the `openai` module's doc says. Must not log or echo the API
//! key.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::Config;
use super::config::RerankApi;
use super::whole_events::WholeEvents;
use crate::api::chat::ChatRequest;
use crate::api::embeddings::{ClientBody, EmbedAnswer, EmbedReply, EncodingFormat};
use crate::api::rerank::RerankReply;
use crate::boxed::in_place;
use crate::config::ProviderSpec;
use crate::providers::body::Limits;
use crate::providers::client::Response;
use crate::providers::openai_wire;
use crate::providers::pieces::Pieces;
use crate::providers::upstream::{Failed, Upstream};
use crate::providers::{Boxed, BuildError, Capabilities, ChatReply, Provider, UpstreamError};

#[derive(Debug)]
pub struct OpenAiProvider {
    upstream: Upstream,
    base_url: String,
    /// `{base_url}/chat/completions` and `{base_url}/embeddings`, parsed
    /// once (not on every call).
    chat_url: Option<http::Uri>,
    embeddings_url: Option<http::Uri>,
    rerank_api: RerankApi,
    headers: http::HeaderMap,
}

impl OpenAiProvider {
    pub(super) fn new(config: &Config, spec: &ProviderSpec) -> Result<Self, BuildError> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &config.headers {
            let name = http::HeaderName::try_from(k.as_str()).map_err(|_| {
                BuildError::new(spec, format!("headers: {k:?} is not a header name"))
            })?;
            let mut value = http::HeaderValue::try_from(v.as_str())
                .map_err(|_| BuildError::new(spec, format!("headers.{k}: not a header value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(key) = &config.api_key {
            let value = openai_wire::secret_header(&format!("Bearer {}", key.expose()))
                .map_err(|_| BuildError::new(spec, "the API key is not a valid header value"))?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let secrets = config
            .api_key
            .iter()
            .map(|k| k.expose())
            .chain(config.headers.values().map(String::as_str));
        let upstream = Upstream::new(&spec.timeouts, spec.max_response_bytes, secrets)
            .map_err(|e| BuildError::new(spec, e.to_string()))?;
        let parsed = |path: &str| http::Uri::try_from(format!("{}{path}", config.base_url)).ok();
        Ok(OpenAiProvider {
            upstream,
            chat_url: parsed("/chat/completions"),
            embeddings_url: parsed("/embeddings"),
            base_url: config.base_url.clone(),
            rerank_api: config.rerank_api,
            headers,
        })
    }

    /// One chat attempt (the [`Provider::chat`] it boxes).
    async fn chat_unboxed(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let (response, limits) = self
            .send(
                "/chat/completions",
                openai_wire::chat_request_body(request, model, openai_wire::takes_reasoning_effort),
            )
            .await?;
        if !stream {
            let body = self.upstream.read_json(response, &limits).await?;
            return match openai_wire::check_chat_completion(&body) {
                Ok(usage) => Ok(ChatReply::Full(body, usage)),
                // Some servers answer a spent quota or a refusal with a 200.
                Err(e) => Err(crate::providers::classes::error_in_200(&body).unwrap_or(e)),
            };
        }
        openai_wire::check_event_stream(&response)?;
        let events = WholeEvents::new(limits.body(response), limits, true);
        Ok(ChatReply::Stream(events.into_stream()))
    }

    /// Sends `body` to `path` and waits for a successful response's headers.
    async fn send(
        &self,
        path: &str,
        body: impl Into<Pieces>,
    ) -> Result<(Response, Limits), UpstreamError> {
        let client = self.upstream.client();
        let request = match (path, &self.chat_url, &self.embeddings_url) {
            ("/chat/completions", Some(url), _) | ("/embeddings", _, Some(url)) => {
                client.post(url.clone())
            }
            _ => client.post(format!("{}{path}", self.base_url)),
        };
        let request = request.headers(&self.headers).body(body);
        self.upstream
            .send(request)
            .await?
            .map_err(Failed::into_status_error)
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn open_connections(&self) -> Option<usize> {
        Some(self.upstream.open_connections())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            chat: true,
            chat_stream: true,
            embeddings: true,
            rerank: true,
            tools: true,
            images: true,
            native: PASSTHROUGH_PATHS,
            prefill: false,
        }
    }

    fn ext_support(&self, request: &ChatRequest, model: &str) -> crate::providers::ExtSupport {
        openai_wire::ext_support(request, model, openai_wire::takes_reasoning_effort)
    }

    /// Boxed in place (see [`Boxed`]): the chat call of most deployments.
    fn chat<'a, 'b, 'c, 't>(
        &'a self,
        request: &'b ChatRequest,
        model: &'c str,
        stream: bool,
    ) -> Boxed<'t, ChatReply>
    where
        'a: 't,
        'b: 't,
        'c: 't,
        Self: 't,
    {
        in_place(move || self.chat_unboxed(request, model, stream))
    }

    async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        let body = openai_wire::embeddings_body(model, inputs, extra, EncodingFormat::Base64);
        let (response, limits) = self.send("/embeddings", body).await?;
        let bytes = self.upstream.read_json(response, &limits).await?;
        openai_wire::embeddings_reply(&bytes, inputs.len())
    }

    /// As [`Self::embed`], asking for the client's `format`: a plain
    /// answer comes back as it came.
    async fn embed_as(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
        format: EncodingFormat,
    ) -> Result<EmbedAnswer, UpstreamError> {
        let body = openai_wire::embeddings_body(model, inputs, extra, format);
        let (response, limits) = self.send("/embeddings", body).await?;
        openai_wire::embeddings_answer(&self.upstream, response, &limits, inputs.len(), format)
            .await
    }

    fn sends_embeddings_body(&self) -> bool {
        true
    }

    /// The client's own body, only `model` set: its inputs are not
    /// written again.
    async fn embed_body(
        &self,
        model: &str,
        body: &ClientBody,
    ) -> Result<EmbedAnswer, UpstreamError> {
        let (response, limits) = self
            .send("/embeddings", Pieces::parts(body.upstream(model)))
            .await?;
        openai_wire::embeddings_answer(&self.upstream, response, &limits, body.len(), body.format)
            .await
    }

    /// `GET` / `DELETE {base_url}{path}`: a stored object, as JSON.
    async fn stored(&self, method: http::Method, path: &str) -> Result<Bytes, UpstreamError> {
        let request = self
            .upstream
            .client()
            .request(method, format!("{}{path}", self.base_url))
            .headers(&self.headers);
        let (response, limits) = self
            .upstream
            .send(request)
            .await?
            .map_err(Failed::into_status_error)?;
        self.upstream.read_json(response, &limits).await
    }

    async fn rerank(
        &self,
        model: &str,
        query: &str,
        documents: &[std::sync::Arc<str>],
        extra: &Map<String, Value>,
    ) -> Result<RerankReply, UpstreamError> {
        if self.rerank_api == RerankApi::Tei {
            let root = self.base_url.strip_suffix("/v1").unwrap_or(&self.base_url);
            let body = openai_wire::tei_rerank_body(query, documents);
            let request = self
                .upstream
                .client()
                .post(format!("{root}/rerank"))
                .headers(&self.headers)
                .body(body);
            let (response, limits) = self
                .upstream
                .send(request)
                .await?
                .map_err(Failed::into_status_error)?;
            let bytes = self.upstream.read_json(response, &limits).await?;
            return openai_wire::tei_rerank_reply(&bytes, documents.len());
        }
        let body = openai_wire::rerank_body(model, query, documents, extra);
        let (response, limits) = self.send("/rerank", body).await?;
        let bytes = self.upstream.read_json(response, &limits).await?;
        openai_wire::rerank_reply(&bytes, documents.len())
    }

    /// `path` passed through: a JSON object, or whole SSE events (the
    /// Responses API ends its streams without `[DONE]`).
    async fn passthrough(
        &self,
        path: &str,
        body: Bytes,
        _client_headers: &http::HeaderMap,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let (response, limits) = self.send(path, body).await?;
        if !stream {
            let body = self.upstream.read_json(response, &limits).await?;
            if !body.trim_ascii_start().starts_with(b"{")
                || serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err()
            {
                return Err(UpstreamError::Protocol(
                    "a 200 answer that is not a JSON object".into(),
                ));
            }
            return Ok(ChatReply::whole(body));
        }
        openai_wire::check_event_stream(&response)?;
        let require_done = path != "/responses";
        let events = WholeEvents::new(limits.body(response), limits, require_done);
        Ok(ChatReply::Stream(events.into_stream()))
    }
}

/// OpenAI-compatible endpoints this kind forwards as they are (`/rerank`
/// is not one: it goes through [`Provider::rerank`], so it is checked,
/// cached per document and can fail over to other kinds).
const PASSTHROUGH_PATHS: &[&str] = &["/responses", "/completions"];
