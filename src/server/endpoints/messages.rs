//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the
//! Anthropic Messages API, routed by `model` like chat.
//!
//! Place in the pipeline: called by the router. Parses the body
//! ([`MessagesRequest`]), finds and admits the route, keeps the client's
//! `anthropic-version` / `anthropic-beta` headers (never its key), and runs
//! one [`MessagesCall`]: each target serves it natively (the client's body,
//! only `model` replaced, and those headers) or has it translated to
//! OpenAI chat ([`crate::api::messages::request`], once per request, with
//! the route's `unsupported:` choice) with its answer or chunk stream
//! translated back to a Message or Messages events, so one route can fail
//! over between the two ways. A request without `max_tokens` gets the
//! route's `messages.default_max_tokens`, or Anthropic's 400. A request no
//! target can serve (every target translated, and a feature chat cannot
//! express) gets a 400 naming the feature and the route, worded as the
//! Responses endpoint words it. What the serving translated attempt left
//! out is named in `x-switchyard-ignored`. JSON answers go back as they are,
//! streams as whole events with a mid-way failure written as an Anthropic
//! `error` event; errors before the answer are written in Anthropic's shape
//! by the edge (`ErrorShape::for_path`). Not cached. `count_tokens` goes
//! to a target that serves it natively (kind `anthropic`) when the route
//! has one; any other route answers an estimate itself ([`estimated_count`]:
//! the estimator admission uses, the request's bytes / 4, rounded up) and
//! says so in `x-switchyard-token-count: estimate`. Must not interpret a
//! native answer.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use serde_json::{Map, Value};

use super::{IgnoredSlot, parse_routed, refused_feature, unsupported_endpoint};
use crate::api::GatewayError;
use crate::api::chat::{Translated, body_with_model};
use crate::api::estimate::{estimate_tokens, max_output_tokens};
use crate::api::messages::request::to_chat;
use crate::api::messages::response::from_chat;
use crate::api::messages::stream::ChatToMessages;
use crate::api::messages::{MessagesError, MessagesRequest};
use crate::api::sse::{SseDecoder, SseEvent};
use crate::api::usage::Dialect;
use crate::providers::translate::TranslateError;
use crate::providers::{ChatReply, Need, Provider, UpstreamError};
use crate::routing::{Call, ReplyFacts, UsageSeen, watch_chat_usage};
use crate::server::edge::context::RequestCtx;
use crate::server::flows::call::{Answer, serve};
use crate::server::flows::translate::{StreamTranslator, translate};
use crate::server::http::{Body, ErrorShape, ReqBody, json_response};

/// The client headers a native target receives.
const FORWARDED: &[&str] = &["anthropic-version", "anthropic-beta"];
const MESSAGES: &str = "/messages";
const COUNT_TOKENS: &str = "/messages/count_tokens";

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    count_tokens: bool,
) -> Result<Response<Body>, GatewayError> {
    let (parts, mut msg, route) = parse_routed(rc, req, MessagesRequest::parse).await?;
    let path = if count_tokens { COUNT_TOKENS } else { MESSAGES };
    let stream = msg.stream && !count_tokens;
    if count_tokens && !route.any_serves(Need::Native(path)) {
        return Ok(estimated_count(msg.wire_len));
    }
    if !count_tokens && !route.capabilities.serves(Need::Chat { stream }) {
        return Err(unsupported_endpoint(&route.spec.name, "messages"));
    }
    if !count_tokens && msg.body.get("max_tokens").is_none_or(Value::is_null) {
        let Some(default) = route.spec.messages_max_tokens else {
            return Err(GatewayError::invalid_param(
                "max_tokens",
                "max_tokens: Field required",
            ));
        };
        msg.body.insert("max_tokens".into(), default.into());
    }
    let native = Need::Native(path);
    let translated = if count_tokens || route.all_serve(native) {
        None
    } else {
        let t = to_chat(&msg.body, stream, route.spec.unsupported).map(|mut t| {
            t.chat.wire_len = msg.wire_len;
            t
        });
        if let Err(e) = &t
            && !route.any_serves(native)
        {
            return Err(refused(&route.spec.name, e));
        }
        Some(t)
    };
    let mut headers = HeaderMap::new();
    for name in FORWARDED {
        for v in parts.headers.get_all(*name) {
            headers.append(*name, v.clone());
        }
    }
    let ignored = IgnoredSlot::default();
    let call = MessagesCall {
        path,
        body: msg.body,
        headers,
        stream,
        wire_len: msg.wire_len,
        translated,
        ignored: ignored.clone(),
        conversation: rc.conversation,
    };
    // Native or translated, the answer is in Anthropic's format
    // (count_tokens answers carry no usage object).
    let how = Answer {
        stream,
        dialect: Dialect::Anthropic,
        shape: ErrorShape::Anthropic,
        strip_usage: false,
    };
    let mut response = serve(rc, &route, call, how).await?;
    ignored.write(rc, &route, response.headers_mut());
    Ok(response)
}

/// A request no target of `route` can serve, as a 400 naming what and where.
fn refused(route: &str, e: &MessagesError) -> GatewayError {
    match e {
        MessagesError::Unsupported(what) => refused_feature(route, "Messages API", what),
        MessagesError::Invalid(m) | MessagesError::BadAnswer(m) => {
            GatewayError::invalid(m.clone()).with_code("invalid_request")
        }
    }
}

/// Header of a `count_tokens` answer the gateway estimated itself.
pub(crate) const TOKEN_COUNT_HEADER: &str = "x-switchyard-token-count";

/// `count_tokens` on a route without a target that counts: the estimate
/// admission reserves for the same body (no output bound: nothing is
/// generated), in Anthropic's shape, marked as an estimate.
fn estimated_count(wire_len: usize) -> Response<Body> {
    let tokens = estimate_tokens(wire_len, 0);
    let mut r = json_response(
        http::StatusCode::OK,
        format!("{{\"input_tokens\":{tokens}}}"),
    );
    r.headers_mut().insert(
        TOKEN_COUNT_HEADER,
        http::HeaderValue::from_static("estimate"),
    );
    r
}

/// One Messages request as routing sees it.
#[derive(Debug)]
struct MessagesCall {
    path: &'static str,
    body: Map<String, Value>,
    headers: HeaderMap,
    stream: bool,
    wire_len: usize,
    /// The chat translation, when some target of the route needs it.
    translated: Option<Result<Translated, MessagesError>>,
    /// What the serving translated attempt ignored.
    ignored: IgnoredSlot,
    conversation: Option<u64>,
}

impl Call for MessagesCall {
    type Reply = ChatReply;

    fn describe(reply: &ChatReply) -> ReplyFacts {
        ReplyFacts::of_chat(Dialect::Anthropic, reply)
    }

    fn watch_usage(reply: &mut ChatReply, seen: UsageSeen) {
        watch_chat_usage(Dialect::Anthropic, reply, seen);
    }

    fn need(&self) -> Need {
        match self.path {
            COUNT_TOKENS => Need::Native(COUNT_TOKENS),
            path => Need::NativeOrChat {
                path,
                stream: self.stream,
            },
        }
    }

    fn estimated_tokens(&self) -> u64 {
        estimate_tokens(self.wire_len, max_output_tokens(&self.body))
    }

    fn input_tokens(&self) -> u64 {
        estimate_tokens(self.wire_len, 0)
    }

    fn output_tokens(&self) -> u64 {
        max_output_tokens(&self.body)
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn affinity(&self) -> Option<u64> {
        self.conversation
    }

    async fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> Result<ChatReply, UpstreamError> {
        let m = &self;
        if provider.capabilities().serves(Need::Native(m.path)) {
            let body = body_with_model(&m.body, &model, m.wire_len);
            return provider
                .passthrough(m.path, body, &m.headers, m.stream)
                .await;
        }
        let t = match &m.translated {
            Some(Ok(t)) => t,
            Some(Err(e)) => return Err(translate_error(e.clone())),
            None => return Err(UpstreamError::Unsupported("the Messages API")),
        };
        let thinking = t.chat.ext.reasoning.as_ref().is_some_and(|r| r.show);
        let support = provider.ext_support(&t.chat, &model);
        let reply = match provider.chat(&t.chat, &model, m.stream).await? {
            ChatReply::Full(bytes, _) => {
                let message = from_chat(&bytes, &model, thinking).map_err(translate_error)?;
                ChatReply::whole(Bytes::from(message.to_string()))
            }
            ChatReply::Stream(chunks) => {
                let state = ToMessages {
                    decoder: SseDecoder::new(),
                    events: Vec::new(),
                    translator: ChatToMessages::new(&model, thinking),
                };
                ChatReply::Stream(translate(chunks, state))
            }
        };
        m.ignored.set(t.ignored_on(support));
        Ok(reply)
    }
}

fn translate_error(e: MessagesError) -> UpstreamError {
    UpstreamError::Translate(match e {
        MessagesError::Unsupported(feature) => TranslateError::Unsupported {
            kind: "chat-only",
            feature,
        },
        MessagesError::Invalid(m) => TranslateError::InvalidRequest(m),
        MessagesError::BadAnswer(m) => TranslateError::BadResponse(m),
    })
}

/// Chat events as Messages events.
struct ToMessages {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    translator: ChatToMessages,
}

impl ToMessages {
    fn write(out: &mut BytesMut, events: Vec<Bytes>) {
        events.iter().for_each(|b| out.extend_from_slice(b));
    }
}

impl StreamTranslator for ToMessages {
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), UpstreamError> {
        self.events.clear();
        self.decoder.feed(chunk, &mut self.events);
        let mut translated = Vec::new();
        let step = self
            .events
            .iter()
            .try_for_each(|ev| self.translator.on_event(ev, &mut translated));
        Self::write(out, translated);
        step.map_err(translate_error)
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), UpstreamError> {
        let mut translated = Vec::new();
        let step = self.translator.finish(&mut translated);
        Self::write(out, translated);
        step.map_err(translate_error)
    }
}
