//! One Messages attempt on one target: natively or translated.
//!
//! Place in the pipeline: the adapter's arm for
//! [`AttemptRequest::Messages`](super::AttemptRequest). A target whose kind
//! [`passes_through`](crate::providers::Provider::passes_through) the path
//! gets the client's body (only `model` replaced) and its `anthropic-*`
//! headers; any other target gets the request translated to OpenAI chat
//! ([`crate::api::messages::request`]), and its answer or chunk stream
//! translated back to a Message or Messages events. So one route can fail
//! over between the two ways. Must not retry, fail over or talk HTTP itself.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value};

use crate::api::chat::body_with_model;
use crate::api::messages::MessagesError;
use crate::api::messages::request::to_chat;
use crate::api::messages::response::from_chat;
use crate::api::messages::stream::ChatToMessages;
use crate::api::sse::{SseDecoder, SseEvent};
use crate::providers::translate::TranslateError;
use crate::providers::{ChatReply, Provider, UpstreamError};

/// The parts of one Messages attempt.
#[derive(Debug)]
pub(super) struct Messages<'a> {
    pub path: &'static str,
    pub body: &'a Map<String, Value>,
    pub headers: &'a http::HeaderMap,
    pub model: &'a str,
    pub stream: bool,
    pub wire_len: usize,
}

pub(super) async fn attempt(
    provider: &dyn Provider,
    m: Messages<'_>,
) -> Result<ChatReply, UpstreamError> {
    if provider.passes_through(m.path) {
        let body = body_with_model(m.body, m.model, m.wire_len);
        return provider
            .passthrough_with_headers(m.path, body, m.headers, m.stream)
            .await;
    }
    if m.path != "/messages" {
        return Err(UpstreamError::Unsupported("count_tokens"));
    }
    let mut chat = to_chat(m.body, m.model, m.stream).map_err(translate_error)?;
    chat.wire_len = m.wire_len;
    match provider.chat(&chat, m.model, m.stream).await? {
        ChatReply::Full(bytes) => {
            let message = from_chat(&bytes, m.model).map_err(translate_error)?;
            Ok(ChatReply::Full(Bytes::from(message.to_string())))
        }
        ChatReply::Stream(chunks) => Ok(ChatReply::Stream(events(chunks, m.model))),
    }
}

fn translate_error(e: MessagesError) -> UpstreamError {
    UpstreamError::Translate(match e {
        MessagesError::Unsupported(feature) => TranslateError::Unsupported {
            kind: "openai chat (translated from Messages)",
            feature,
        },
        MessagesError::Invalid(m) => TranslateError::InvalidRequest(m),
        MessagesError::BadAnswer(m) => TranslateError::BadResponse(m),
    })
}

/// A chat chunk stream as Messages events; ends after the first error.
fn events(
    chunks: BoxStream<'static, Result<Bytes, UpstreamError>>,
    model: &str,
) -> BoxStream<'static, Result<Bytes, UpstreamError>> {
    struct State {
        chunks: BoxStream<'static, Result<Bytes, UpstreamError>>,
        decoder: SseDecoder,
        events: Vec<SseEvent>,
        translator: ChatToMessages,
        ended: bool,
        /// An error to send after the events translated before it.
        failed: Option<UpstreamError>,
    }
    let state = State {
        chunks,
        decoder: SseDecoder::new(),
        events: Vec::new(),
        translator: ChatToMessages::new(model),
        ended: false,
        failed: None,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        if let Some(e) = s.failed.take() {
            return Some((Err(e), None));
        }
        if s.ended {
            return None;
        }
        loop {
            let mut out = Vec::new();
            let step = match s.chunks.next().await {
                None => {
                    s.ended = true;
                    s.translator.finish(&mut out)
                }
                Some(Err(e)) => return Some((Err(e), None)),
                Some(Ok(chunk)) => {
                    s.events.clear();
                    s.decoder.feed(&chunk, &mut s.events);
                    s.events
                        .iter()
                        .try_for_each(|ev| s.translator.on_event(ev, &mut out))
                }
            };
            if let Err(e) = step {
                s.failed = Some(translate_error(e));
            }
            if !out.is_empty() {
                let mut joined = BytesMut::new();
                out.iter().for_each(|b| joined.extend_from_slice(b));
                return Some((Ok(joined.freeze()), Some(s)));
            }
            if let Some(e) = s.failed.take() {
                return Some((Err(e), None));
            }
            if s.ended {
                return None;
            }
        }
    })
    .boxed()
}
