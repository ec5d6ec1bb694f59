//! The `bedrock` provider: one signed HTTP call to AWS Bedrock Runtime per
//! attempt (Converse, ConverseStream or InvokeModel).
//!
//! Place in the pipeline: called by `routing` for one attempt, like every
//! kind. Translates the OpenAI request with the module's translators, signs
//! it with SigV4 (afresh for every attempt: the signature covers the time),
//! sends it through [`Upstream`] (connect and first-byte timeouts, body
//! limits, size cap, scrubbed error bodies), and translates the answer: a
//! Converse body to a `chat.completion`, a ConverseStream event stream to
//! OpenAI chunks ([`super::stream_body`]), InvokeModel bodies to vectors.
//! A non-2xx answer is classified by Bedrock's own error type
//! (`x-amzn-ErrorType`) into [`UpstreamError::Classified`] with an OpenAI
//! error envelope. Must not retry, fail over, log or echo credentials, or
//! sign a request once and reuse the signature.

use crate::providers::upstream::SetupError;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::config::{CAPABILITIES, Config};
use super::stream_body::event_stream;
use super::{
    AwsCredentials, BedrockChatSettings, BedrockEmbedSettings, BedrockStream, chat_request_ext,
    chat_response, classify_error, converse_path, embed_request, embed_response, input_token_count,
    invoke_path, max_batch_inputs, sign,
};
use crate::api::chat::ChatRequest;
use crate::api::embeddings::EmbedReply;
use crate::config::Timeouts;
use crate::providers::body::Limits;
use crate::providers::client::{RequestBuilder, Response};
use crate::providers::scrub::Scrubber;
use crate::providers::upstream::{Failed, Upstream, content_type_is};
use crate::providers::{Capabilities, ChatReply, Classification, Provider};
use crate::providers::{UpstreamError, parse_retry_after};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

#[derive(Debug)]
pub struct BedrockProvider {
    upstream: Upstream,
    base_url: String,
    region: String,
    credentials: AwsCredentials,
    chat: BedrockChatSettings,
    embed: BedrockEmbedSettings,
}

impl BedrockProvider {
    pub(super) fn new(
        config: &Config,
        timeouts: &Timeouts,
        max_response_bytes: u64,
    ) -> Result<Self, SetupError> {
        let credentials = AwsCredentials::new(
            config.access_key_id.expose(),
            config.secret_access_key.expose(),
            config
                .session_token
                .as_ref()
                .map(|t| t.expose().to_string()),
        );
        let secrets = [
            Some(&config.secret_access_key),
            config.session_token.as_ref(),
        ];
        let upstream = Upstream::new(
            timeouts,
            max_response_bytes,
            secrets.into_iter().flatten().map(|s| s.expose()),
        )?;
        Ok(BedrockProvider {
            upstream,
            base_url: config.base_url.clone(),
            region: config.region.clone(),
            credentials,
            chat: config.chat.clone(),
            embed: config.embed.clone(),
        })
    }

    /// Signs and sends `body` to `path`; waits for a successful answer's
    /// headers, or classifies the failure.
    async fn send(
        &self,
        path: &str,
        body: &Value,
        accept: &'static str,
    ) -> Result<(Response, Limits), UpstreamError> {
        let body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let mut request = http::Request::post(format!("{}{path}", self.base_url))
            .header(http::header::CONTENT_TYPE, JSON)
            .header(http::header::ACCEPT, accept)
            .body(body)
            .map_err(|e| self.internal(format!("cannot build the request: {e}")))?;
        // The one place this provider reads the wall clock: a SigV4
        // signature covers the time it was made at, and Bedrock refuses one
        // more than five minutes off, so every attempt is signed now.
        sign(
            &mut request,
            &self.credentials,
            &self.region,
            SystemTime::now(),
        )
        .map_err(|e| self.internal(e.to_string()))?;
        for name in [http::header::AUTHORIZATION.as_str(), "x-amz-security-token"] {
            if let Some(v) = request.headers_mut().get_mut(name) {
                v.set_sensitive(true);
            }
        }
        let builder = RequestBuilder::from_http(request);
        self.upstream.send_classified(builder, classified).await
    }

    /// A request this provider could not build or sign: the gateway's own
    /// problem, not the client's; another target may do better.
    fn internal(&self, message: String) -> UpstreamError {
        let verdict = (false, true, true, 500, "internal_error");
        Classification::new(verdict, &format!("Bedrock request not sent: {message}"))
            .into_error(None, self.upstream.scrubber())
    }
}

#[async_trait::async_trait]
impl Provider for BedrockProvider {
    fn open_connections(&self) -> Option<usize> {
        Some(self.upstream.open_connections())
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn max_batch_inputs(&self, model: &str) -> usize {
        max_batch_inputs(model)
    }

    fn ext_support(&self, request: &ChatRequest, model: &str) -> crate::providers::ExtSupport {
        let max = request
            .body
            .get("max_completion_tokens")
            .or_else(|| request.body.get("max_tokens"))
            .and_then(Value::as_u64)
            .or(self.chat.default_max_tokens);
        let e = super::thinking::extra(&request.body, &request.ext, model, max);
        crate::providers::ExtSupport {
            reasoning: e.reasoning,
            top_k: e.top_k,
            serial_tool_calls: false,
        }
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let body = chat_request_ext(&request.body, &request.ext, model, &self.chat)
            .map_err(UpstreamError::Translate)?;
        let path = converse_path(model, stream);
        let accept = if stream { EVENT_STREAM } else { JSON };
        let (response, limits) = self.send(&path, &body, accept).await?;
        if !stream {
            let bytes = self.upstream.read_json(response, &limits).await?;
            let reply = chat_response(&bytes, &request.model).map_err(UpstreamError::Translate)?;
            return Ok(ChatReply::whole(Bytes::from(reply.to_string())));
        }
        if !content_type_is(&response, |t| t == EVENT_STREAM, false) {
            return Err(UpstreamError::Protocol(format!(
                "a streaming answer that is not {EVENT_STREAM}"
            )));
        }
        let include_usage = request.include_usage();
        let translator = BedrockStream::new(&request.model, include_usage);
        Ok(ChatReply::Stream(event_stream(
            response, limits, translator,
        )))
    }

    async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        let body =
            embed_request(inputs, model, extra, &self.embed).map_err(UpstreamError::Translate)?;
        let (response, limits) = self.send(&invoke_path(model), &body, JSON).await?;
        let counted = input_token_count(response.headers());
        let bytes = self.upstream.read_json(response, &limits).await?;
        let mut reply =
            embed_response(model, &bytes, inputs.len()).map_err(UpstreamError::Translate)?;
        // Cohere bodies carry no token count; InvokeModel's header does.
        if reply.prompt_tokens == 0
            && let Some(n) = counted
        {
            reply.prompt_tokens = n;
            reply.total_tokens = n;
        }
        Ok(reply)
    }
}

/// A non-2xx Bedrock answer, classified by its error type, with the body
/// rewritten as an OpenAI error envelope.
fn classified(failed: Failed, scrubber: &Scrubber) -> UpstreamError {
    let error_type = failed
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok());
    classify_error(failed.status, error_type, &failed.body)
        .into_error(parse_retry_after(&failed.headers), scrubber)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::providers::ErrorClass;

    fn classified(failed: Failed) -> UpstreamError {
        super::classified(failed, &Scrubber::default())
    }

    fn failed(status: u16, error_type: Option<&str>, body: &str) -> Failed {
        let mut headers = http::HeaderMap::new();
        if let Some(t) = error_type {
            headers.insert("x-amzn-errortype", t.parse().unwrap());
        }
        Failed {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    fn parts(e: UpstreamError) -> (u16, Value, ErrorClass, Option<Duration>) {
        match e {
            UpstreamError::Classified {
                status,
                body,
                retry_after,
                class,
            } => (
                status,
                serde_json::from_slice(&body).unwrap(),
                class,
                retry_after,
            ),
            other => panic!("not classified: {other:?}"),
        }
    }

    #[test]
    fn throttling_becomes_a_retryable_429_envelope() {
        let mut f = failed(
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            r#"{"message":"Too many requests"}"#,
        );
        f.headers.insert("retry-after", "2".parse().unwrap());
        let (status, body, class, after) = parts(classified(f));
        assert_eq!(status, 429);
        assert_eq!(
            body,
            json!({"error": {"message": "Too many requests", "type": "rate_limit_error",
                             "param": null, "code": "ThrottlingException"}})
        );
        assert!(class.retryable && class.moves_on && !class.trips_breaker);
        assert_eq!(after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn validation_goes_back_to_the_client() {
        let f = failed(
            400,
            None,
            r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}"#,
        );
        let (status, body, class, _) = parts(classified(f));
        assert_eq!(status, 400);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "ValidationException");
        assert!(!class.retryable && !class.moves_on && !class.trips_breaker);
    }

    #[test]
    fn unknown_server_errors_move_on() {
        let (status, body, class, _) = parts(classified(failed(500, None, "<html>")));
        assert_eq!(status, 502);
        assert_eq!(body["error"]["code"], Value::Null);
        assert!(body["error"]["message"].as_str().unwrap().contains("500"));
        assert!(class.retryable && class.moves_on && class.trips_breaker);
    }
}
