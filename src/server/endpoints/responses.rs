//! `POST /v1/responses`: the OpenAI Responses API, per target passed
//! through or translated to chat completions.
//!
//! Place in the pipeline: called by the router. The body is parsed and
//! admitted once; when some target of the route does not serve
//! `/responses` natively, it is translated to one chat request here, once,
//! and each attempt picks per target ([`ResponsesCall`]): a target that
//! passes `/responses` through gets the client's body unchanged but for
//! `model` (JSON or SSE answered as they are); any other chat target gets
//! the chat request, and its answer (JSON or stream) is turned into the
//! Responses format. So a route can fail over from a passthrough target to
//! a translated one. The translation follows the route's `unsupported:`
//! choice, and what the serving translated attempt left out is named in
//! `x-switchyard-ignored`. On a route with a translated target the gateway
//! serves the API's state itself ([`stateful`], `flows::stored`): `store`
//! (the API's default) keeps the conversation, `previous_response_id`
//! continues one; a route whose every target passes `/responses` through
//! keeps the upstream's state as it is. A request a route cannot serve at
//! all (built-in tools on a rejecting route, ... on a route whose every
//! target is translated) is refused with a 400 naming the feature and the
//! route. Never cached. Streams are piped as chat streams are (whole
//! events, in-band error at a mid-stream failure). Must not alter a
//! passthrough body beyond `model`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::{HeaderMap, Request, Response};

use super::{IgnoredSlot, parse_routed, refused_feature, unsupported_endpoint};
use crate::api::GatewayError;
use crate::api::chat::{Translated, body_with_model};
use crate::api::estimate::{Routed, estimate_tokens};
use crate::api::responses::request::to_chat;
use crate::api::responses::stream::ChatToResponses;
use crate::api::responses::{Echo, ResponsesError, ResponsesRequest, response};
use crate::api::usage::Dialect;
use crate::providers::translate::TranslateError;
use crate::providers::{ChatReply, Need, Provider, UpstreamError};
use crate::routing::{Call, ReplyFacts, RouteHandle, UsageSeen, watch_chat_usage};
use crate::server::edge::context::RequestCtx;
use crate::server::flows::call::{Answer, serve};
use crate::server::flows::stored;
use crate::server::flows::translate::{StreamTranslator, translate};
use crate::server::http::{Body, ErrorShape, ReqBody};

/// The upstream path a passthrough target serves.
pub(crate) const PATH: &str = "/responses";

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (_parts, mut request, route) = parse_routed(rc, req, ResponsesRequest::parse).await?;
    let kept = stateful(rc, &route, &mut request).await?;
    let stream = request.stream;
    if !route.capabilities.serves(Need::Chat { stream }) {
        return Err(unsupported_endpoint(&route.spec.name, "the Responses API"));
    }
    let native = Need::Native(PATH);
    let (chat, mut echo) = if route.all_serve(native) {
        (None, Echo::default())
    } else {
        let chat = to_chat(&request.body, route.spec.unsupported).map(|mut t| {
            t.chat.wire_len = request.wire_len;
            t
        });
        if let Err(e) = &chat
            && !route.any_serves(native)
        {
            return Err(refused(&route.spec.name, e));
        }
        (Some(chat), Echo::of(&request.body))
    };
    if let Some(k) = &kept {
        k.echo(&mut echo);
    }
    let ignored = IgnoredSlot::default();
    let call = ResponsesCall {
        request,
        chat,
        echo,
        ignored: ignored.clone(),
        conversation: rc.conversation,
    };
    // Passed through or translated, the answer is in the Responses format.
    let how = Answer {
        stream,
        dialect: Dialect::Responses,
        shape: ErrorShape::OpenAi,
        strip_usage: false,
    };
    let mut answer = serve(rc, &route, call, how).await?;
    ignored.write(rc, &route, answer.headers_mut());
    Ok(match kept {
        Some(k) => stored::keep(k, answer).await,
        None => answer,
    })
}

/// Stateful Responses: on a route with a translated target the gateway
/// keeps the conversation itself (`flows::stored`); a route whose every
/// target passes `/responses` through keeps the upstream's own state.
async fn stateful(
    rc: &RequestCtx,
    route: &RouteHandle,
    request: &mut ResponsesRequest,
) -> Result<Option<stored::Keep>, GatewayError> {
    let native = Need::Native(PATH);
    if route.all_serve(native) {
        return Ok(None);
    }
    stored::prepare(rc, &route.spec.name, route.any_serves(native), request).await
}

/// A request no target of `route` can serve, as a 400 naming what and where.
fn refused(route: &str, e: &ResponsesError) -> GatewayError {
    match e {
        ResponsesError::Unsupported(what) => refused_feature(route, "Responses API", what),
        ResponsesError::Invalid(m) | ResponsesError::BadAnswer(m) => {
            GatewayError::invalid(m.clone()).with_code("invalid_request")
        }
    }
}

/// A Responses API request ready for any target.
#[derive(Debug)]
struct ResponsesCall {
    request: ResponsesRequest,
    /// The chat translation, when some target of the route needs it.
    chat: Option<Result<Translated, ResponsesError>>,
    /// What the translated answer echoes of the request.
    echo: Echo,
    /// What the serving translated attempt ignored.
    ignored: IgnoredSlot,
    conversation: Option<u64>,
}

/// A translation failure as the attempt error routing understands.
fn upstream_error(e: &ResponsesError) -> UpstreamError {
    UpstreamError::Translate(match e {
        ResponsesError::Unsupported(feature) => TranslateError::Unsupported {
            kind: "chat-only",
            feature: feature.clone(),
        },
        ResponsesError::Invalid(m) => TranslateError::InvalidRequest(m.clone()),
        ResponsesError::BadAnswer(m) => TranslateError::BadResponse(m.clone()),
    })
}

impl Call for ResponsesCall {
    type Reply = ChatReply;

    fn describe(reply: &ChatReply) -> ReplyFacts {
        ReplyFacts::of_chat(Dialect::Responses, reply)
    }

    fn watch_usage(reply: &mut ChatReply, seen: UsageSeen) {
        watch_chat_usage(Dialect::Responses, reply, seen);
    }

    fn need(&self) -> Need {
        Need::NativeOrChat {
            path: PATH,
            stream: self.request.stream,
        }
    }

    fn estimated_tokens(&self) -> u64 {
        estimate_tokens(self.request.wire_len, self.request.max_output_tokens())
    }

    fn input_tokens(&self) -> u64 {
        estimate_tokens(self.request.wire_len, 0)
    }

    fn output_tokens(&self) -> u64 {
        self.request.max_output_tokens()
    }

    /// The Responses API stores answers unless told not to (`store:
    /// false`): only then is it safe to send twice.
    fn idempotent(&self) -> bool {
        self.request
            .body
            .get("store")
            .and_then(serde_json::Value::as_bool)
            == Some(false)
    }

    fn affinity(&self) -> Option<u64> {
        self.conversation
    }

    /// Passed through where the target serves `/responses`, else sent as
    /// chat and the answer translated back.
    async fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> Result<ChatReply, UpstreamError> {
        let r = &self.request;
        if provider.capabilities().serves(Need::Native(PATH)) {
            let body = body_with_model(&r.body, &model, r.wire_len);
            let none = HeaderMap::new();
            return provider.passthrough(PATH, body, &none, r.stream).await;
        }
        let t = match &self.chat {
            Some(Ok(t)) => t,
            Some(Err(e)) => return Err(upstream_error(e)),
            None => return Err(UpstreamError::Unsupported("the Responses API")),
        };
        let support = provider.ext_support(&t.chat, &model);
        let reply = match provider.chat(&t.chat, &model, r.stream).await? {
            ChatReply::Full(body, _) => response::from_chat(&body, &self.echo)
                .map(ChatReply::whole)
                .map_err(|e| upstream_error(&e))?,
            ChatReply::Stream(events) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let state = ToResponses(ChatToResponses::new(self.echo.clone(), now));
                ChatReply::Stream(translate(events, state))
            }
        };
        self.ignored.set(t.ignored_on(support));
        Ok(reply)
    }
}

/// Chat events as Responses API events.
struct ToResponses(ChatToResponses);

impl StreamTranslator for ToResponses {
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), UpstreamError> {
        let events = self.0.feed(chunk).map_err(|e| upstream_error(&e))?;
        out.extend_from_slice(&events);
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), UpstreamError> {
        out.extend_from_slice(&self.0.finish());
        Ok(())
    }
}
