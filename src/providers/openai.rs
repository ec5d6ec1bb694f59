//! Provider kind `openai`: any OpenAI-compatible HTTP API.
//!
//! Place in the pipeline: called by `routing` for one attempt. Sends
//! `POST {base_url}/chat/completions` or `/embeddings` with the provider's key
//! (read from the environment at load time). Applies the connect timeout (in
//! the client), the first-byte timeout (until response headers) and the total
//! timeout (whole body or stream). Must not log or echo the API key.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use super::{ChatReply, UpstreamError, parse_retry_after};
use crate::api::embeddings::{EmbedReply, parse_upstream_reply};
use crate::config::{OpenAiSpec, Timeouts};

/// Error bodies are read up to this size; the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub struct OpenAiProvider {
    client: reqwest::Client,
    base_url: String,
    headers: http::HeaderMap,
    timeouts: Timeouts,
}

impl OpenAiProvider {
    pub fn new(spec: &OpenAiSpec, timeouts: &Timeouts) -> Result<Self, String> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &spec.headers {
            let name = http::HeaderName::try_from(k.as_str()).map_err(|e| e.to_string())?;
            let value = http::HeaderValue::try_from(v.as_str()).map_err(|e| e.to_string())?;
            headers.insert(name, value);
        }
        if let Some(key) = &spec.api_key {
            let mut value = http::HeaderValue::try_from(format!("Bearer {}", key.expose()))
                .map_err(|_| "API key is not a valid header value".to_string())?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(OpenAiProvider {
            client,
            base_url: spec.base_url.clone(),
            headers,
            timeouts: timeouts.clone(),
        })
    }

    async fn send(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(reqwest::Response, Instant), UpstreamError> {
        let start = Instant::now();
        let total_deadline = start + self.timeouts.total;
        let first_byte = (start + self.timeouts.first_byte).min(total_deadline);
        let request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .headers(self.headers.clone())
            .json(body)
            .send();
        let response = match timeout_at(first_byte, request).await {
            Err(_) => {
                let which = if first_byte == total_deadline {
                    "total"
                } else {
                    "first_byte"
                };
                return Err(UpstreamError::Timeout(which));
            }
            Ok(Err(e)) => return Err(classify(e)),
            Ok(Ok(r)) => r,
        };
        if response.status().is_success() {
            return Ok((response, total_deadline));
        }
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while body.len() < MAX_ERROR_BODY {
            match timeout_at(total_deadline, stream.next()).await {
                Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        Err(UpstreamError::Status {
            status,
            body: Bytes::from(body),
            retry_after,
        })
    }

    pub async fn chat(&self, body: &Value, stream: bool) -> Result<ChatReply, UpstreamError> {
        let (response, deadline) = self.send("/chat/completions", body).await?;
        if !stream {
            return read_all(response, deadline).await.map(ChatReply::Full);
        }
        let chunks =
            futures_util::stream::unfold(Some(response.bytes_stream()), move |state| async move {
                let mut s = state?;
                match timeout_at(deadline, s.next()).await {
                    Err(_) => Some((Err(UpstreamError::Timeout("total")), None)),
                    Ok(None) => None,
                    Ok(Some(Err(e))) => Some((Err(classify(e)), None)),
                    Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(s))),
                }
            });
        Ok(ChatReply::Stream(chunks.boxed()))
    }

    pub async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        let mut body = extra.clone();
        body.insert("model".into(), Value::String(model.to_string()));
        body.insert("input".into(), Value::Array(inputs.to_vec()));
        body.insert("encoding_format".into(), Value::String("base64".into()));
        let (response, deadline) = self.send("/embeddings", &Value::Object(body)).await?;
        let bytes = read_all(response, deadline).await?;
        parse_upstream_reply(&bytes, inputs.len()).map_err(UpstreamError::Protocol)
    }
}

async fn read_all(response: reqwest::Response, deadline: Instant) -> Result<Bytes, UpstreamError> {
    match timeout_at(deadline, response.bytes()).await {
        Err(_) => Err(UpstreamError::Timeout("total")),
        Ok(Err(e)) => Err(classify(e)),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Maps a reqwest error without its URL (which could carry credentials).
fn classify(e: reqwest::Error) -> UpstreamError {
    let e = e.without_url();
    if e.is_timeout() {
        UpstreamError::Timeout("connect")
    } else if e.is_connect() {
        UpstreamError::Connect(root_cause(&e))
    } else {
        UpstreamError::Protocol(root_cause(&e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
