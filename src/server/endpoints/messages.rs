//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the
//! Anthropic Messages API, routed by `model` like chat.
//!
//! Place in the pipeline: called by the router. Parses the body
//! ([`MessagesRequest`]), finds and admits the route, keeps the client's
//! `anthropic-version` / `anthropic-beta` headers (never its key), and runs
//! one [`MessagesCall`]: each target serves it natively (the client's body,
//! only `model` replaced, and those headers) or has it translated to
//! OpenAI chat ([`crate::api::messages::request`]) with its answer or chunk
//! stream translated back to a Message or Messages events, so one route can
//! fail over between the two ways. JSON answers go back as they are,
//! streams as whole events with a mid-way failure written as an Anthropic
//! `error` event; errors before the answer are written in Anthropic's shape
//! by the edge (`ErrorShape::for_path`). Not cached. `count_tokens` needs a
//! target that serves it natively (kind `anthropic`): any other route gets
//! 400 naming it. Must not interpret a native answer.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use serde_json::{Map, Value};

use super::{parse_routed, unsupported_endpoint};
use crate::api::GatewayError;
use crate::api::chat::body_with_model;
use crate::api::estimate::{estimate_tokens, max_output_tokens};
use crate::api::messages::request::to_chat;
use crate::api::messages::response::from_chat;
use crate::api::messages::stream::ChatToMessages;
use crate::api::messages::{MessagesError, MessagesRequest};
use crate::api::sse::{SseDecoder, SseEvent};
use crate::api::usage::Dialect;
use crate::providers::translate::TranslateError;
use crate::providers::{ChatReply, Need, Provider, UpstreamError};
use crate::routing::Call;
use crate::server::edge::context::RequestCtx;
use crate::server::flows::call::{Answer, serve};
use crate::server::flows::translate::{StreamTranslator, translate};
use crate::server::http::{Body, ErrorShape, ReqBody};

/// The client headers a native target receives.
const FORWARDED: &[&str] = &["anthropic-version", "anthropic-beta"];
const MESSAGES: &str = "/messages";
const COUNT_TOKENS: &str = "/messages/count_tokens";

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    count_tokens: bool,
) -> Result<Response<Body>, GatewayError> {
    let (parts, msg, route) = parse_routed(rc, req, MessagesRequest::parse).await?;
    let path = if count_tokens { COUNT_TOKENS } else { MESSAGES };
    let stream = msg.stream && !count_tokens;
    if count_tokens && !route.any_serves(Need::Native(path)) {
        return Err(GatewayError::invalid_param(
            "model",
            format!(
                "The model `{}` does not serve /v1/messages/count_tokens: only targets of kind `anthropic` count tokens.",
                route.spec.name
            ),
        )
        .with_code("unsupported_endpoint"));
    }
    if !count_tokens && !route.capabilities.serves(Need::Chat { stream }) {
        return Err(unsupported_endpoint(&route.spec.name, "messages"));
    }
    let mut headers = HeaderMap::new();
    for name in FORWARDED {
        for v in parts.headers.get_all(*name) {
            headers.append(*name, v.clone());
        }
    }
    let call = MessagesCall {
        path,
        body: msg.body,
        headers,
        stream,
        wire_len: msg.wire_len,
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
    serve(rc, &route, call, how).await
}

/// One Messages request as routing sees it.
#[derive(Debug)]
struct MessagesCall {
    path: &'static str,
    body: Map<String, Value>,
    headers: HeaderMap,
    stream: bool,
    wire_len: usize,
    conversation: Option<u64>,
}

impl Call for MessagesCall {
    type Reply = ChatReply;

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
        let mut chat = to_chat(&m.body, &model, m.stream).map_err(translate_error)?;
        chat.wire_len = m.wire_len;
        match provider.chat(&chat, &model, m.stream).await? {
            ChatReply::Full(bytes) => {
                let message = from_chat(&bytes, &model).map_err(translate_error)?;
                Ok(ChatReply::Full(Bytes::from(message.to_string())))
            }
            ChatReply::Stream(chunks) => {
                let state = ToMessages {
                    decoder: SseDecoder::new(),
                    events: Vec::new(),
                    translator: ChatToMessages::new(&model),
                };
                Ok(ChatReply::Stream(translate(chunks, state)))
            }
        }
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
