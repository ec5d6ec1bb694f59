//! One Responses API attempt on one target: passed through, or translated
//! to chat completions and back.
//!
//! Place in the pipeline: the attempt stack's adapter calls [`attempt`] for
//! an [`AttemptRequest::Responses`](super::AttemptRequest). The decision is
//! per target: a provider that passes `/responses` through gets the client's
//! body unchanged but for `model` (JSON or SSE answered as they are); any
//! other chat-capable provider gets the chat request translated once by
//! `server`, and its answer (JSON or stream) is turned into the Responses
//! format. So a route can fail over from a passthrough target to a
//! translated one. Must not retry or fail over itself.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::api::chat::{ChatRequest, body_with_model};
use crate::api::responses::stream::ChatToResponses;
use crate::api::responses::{Echo, ResponsesError, ResponsesRequest, response};
use crate::providers::translate::TranslateError;
use crate::providers::{ChatReply, Provider, UpstreamError};

/// The upstream path a passthrough target serves.
pub const PATH: &str = "/responses";

/// A Responses API request ready for any target.
#[derive(Debug)]
pub struct ResponsesCall {
    pub request: ResponsesRequest,
    /// The chat translation, when some target of the route needs it.
    pub chat: Option<Result<ChatRequest, ResponsesError>>,
    /// What the translated answer echoes of the request.
    pub echo: Echo,
}

/// A translation failure as the attempt error routing understands.
pub fn upstream_error(e: &ResponsesError) -> UpstreamError {
    UpstreamError::Translate(match e {
        ResponsesError::Unsupported(feature) => TranslateError::Unsupported {
            kind: "chat-only",
            feature: feature.clone(),
        },
        ResponsesError::Invalid(m) => TranslateError::InvalidRequest(m.clone()),
        ResponsesError::BadAnswer(m) => TranslateError::BadResponse(m.clone()),
    })
}

/// One attempt of `call` on `provider`, sent as `model`.
pub(super) async fn attempt(
    provider: Arc<dyn Provider>,
    call: Arc<ResponsesCall>,
    model: Arc<str>,
) -> Result<ChatReply, UpstreamError> {
    let r = &call.request;
    if provider.passes_through(PATH) {
        let body = body_with_model(&r.body, &model, r.wire_len);
        return provider.passthrough(PATH, body, r.stream).await;
    }
    let chat = match &call.chat {
        Some(Ok(chat)) => chat,
        Some(Err(e)) => return Err(upstream_error(e)),
        None => return Err(UpstreamError::Unsupported("the Responses API")),
    };
    match provider.chat(chat, &model, r.stream).await? {
        ChatReply::Full(body) => response::from_chat(&body, &call.echo)
            .map(ChatReply::Full)
            .map_err(|e| upstream_error(&e)),
        ChatReply::Stream(events) => Ok(ChatReply::Stream(translate_stream(
            events,
            call.echo.clone(),
        ))),
    }
}

/// A chat SSE stream as a Responses API event stream.
fn translate_stream(
    events: BoxStream<'static, Result<bytes::Bytes, UpstreamError>>,
    echo: Echo,
) -> BoxStream<'static, Result<bytes::Bytes, UpstreamError>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let state = ChatToResponses::new(echo, now);
    futures_util::stream::unfold(Some((events, state)), |s| async move {
        let (mut events, mut state) = s?;
        loop {
            match events.next().await {
                Some(Ok(chunk)) => match state.feed(&chunk) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Some((Ok(out), Some((events, state)))),
                    Err(e) => return Some((Err(upstream_error(&e)), None)),
                },
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let out = state.finish();
                    return (!out.is_empty()).then_some((Ok(out), None));
                }
            }
        }
    })
    .boxed()
}
