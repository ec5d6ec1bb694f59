//! The Messages API passed through as it is (`/v1/messages`,
//! `/v1/messages/count_tokens`), for clients that speak it themselves.
//!
//! Place in the pipeline: called by `routing` for a Messages attempt on a
//! target of this kind. The client's body goes upstream with only `model`
//! replaced; its `anthropic-version` replaces the configured one and its
//! `anthropic-beta` values join the configured ones; the key sent is the
//! provider's (the client's `x-api-key` is never forwarded). The answer comes
//! back unchanged: a JSON body, or the event stream re-cut into whole events,
//! which must end with `message_stop` (or an in-stream `error`). Errors are
//! classified as for chat. Must not translate, retry or log.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::config::NATIVE_PATHS;
use super::provider::{AnthropicProvider, classified};
use crate::api::sse::{SseEvent, data_event, named_event};
use crate::providers::translate::TranslateError;
use crate::providers::upstream::{StreamTranslate, content_type_is, translated_sse};
use crate::providers::{ChatReply, UpstreamError};

/// The provider's headers with the client's `anthropic-version` and
/// `anthropic-beta` applied.
pub(super) fn merged_headers(own: &HeaderMap, client: &HeaderMap) -> HeaderMap {
    let mut headers = own.clone();
    if let Some(v) = client.get("anthropic-version") {
        headers.insert("anthropic-version", v.clone());
    }
    let mut betas: Vec<&str> = Vec::new();
    for beta in own
        .get_all("anthropic-beta")
        .iter()
        .chain(client.get_all("anthropic-beta").iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if !beta.is_empty() && !betas.contains(&beta) {
            betas.push(beta);
        }
    }
    if !betas.is_empty()
        && let Ok(v) = HeaderValue::from_str(&betas.join(","))
    {
        headers.insert("anthropic-beta", v);
    }
    headers
}

impl AnthropicProvider {
    pub(super) async fn native(
        &self,
        path: &str,
        body: Bytes,
        client_headers: &HeaderMap,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        if !NATIVE_PATHS.contains(&path) {
            return Err(UpstreamError::Unsupported("this endpoint"));
        }
        let call = self
            .upstream()
            .client()
            .post(format!("{}{path}", self.base()))
            .headers(&merged_headers(self.own_headers(), client_headers))
            .body(body);
        let (response, limits) = self.upstream().send_classified(call, classified).await?;
        if !stream {
            let bytes = self.upstream().read_json(response, &limits).await?;
            return Ok(ChatReply::whole(bytes));
        }
        if !content_type_is(&response, |t| t == "text/event-stream", false) {
            return Err(UpstreamError::Protocol(
                "a streaming answer that is not text/event-stream".into(),
            ));
        }
        Ok(ChatReply::Stream(translated_sse(
            response,
            limits,
            Forward { ended: false },
        )))
    }
}

/// Passes events on as they are; the stream must reach its end event.
struct Forward {
    ended: bool,
}

impl StreamTranslate for Forward {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        self.ended |= ev.event == "message_stop" || ev.event == "error";
        out.push(if ev.event.is_empty() {
            data_event(ev.data.as_bytes())
        } else {
            named_event(&ev.event, ev.data.as_bytes())
        });
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.ended {
            Ok(())
        } else {
            Err(TranslateError::BadResponse(
                "the stream ended before message_stop".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_version_wins_and_betas_join_but_never_the_clients_key() {
        let mut own = HeaderMap::new();
        own.insert("x-api-key", HeaderValue::from_static("sk-provider"));
        own.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        own.insert("anthropic-beta", HeaderValue::from_static("a-1"));
        let mut client = HeaderMap::new();
        client.insert("anthropic-version", HeaderValue::from_static("2099-01-01"));
        client.insert("anthropic-beta", HeaderValue::from_static("b-2, c-3"));
        client.insert("x-api-key", HeaderValue::from_static("sk-client"));
        let h = merged_headers(&own, &client);
        assert_eq!(h["x-api-key"], "sk-provider");
        assert_eq!(h["anthropic-version"], "2099-01-01");
        assert_eq!(h["anthropic-beta"], "a-1,b-2,c-3");
    }
}
