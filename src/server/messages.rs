//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the
//! Anthropic Messages API, routed by `model` like chat.
//!
//! Place in the pipeline: called by `router`. Parses the body
//! ([`MessagesRequest`]), finds the route, keeps the client's
//! `anthropic-version` / `anthropic-beta` headers (never its key) and runs
//! one [`AttemptRequest::Messages`] through routing; each target passes it
//! through or translates it (see `routing/messages.rs`). JSON answers go
//! back as they are, streams as whole events with a mid-way failure written
//! as an Anthropic `error` event; errors before the answer are written in
//! Anthropic's shape by the edge (`ErrorShape::for_path`). Not cached.
//! `count_tokens` needs a target that serves it natively (kind
//! `anthropic`): any other route gets 400 naming it. Must not interpret
//! the answer.

use std::sync::Arc;

use http::{HeaderMap, Request, Response, StatusCode};

use super::chat::{served_by, sse_reply};
use super::context::RequestCtx;
use super::http::{Body, ErrorShape, ReqBody, json_response};
use super::router::{Ctx, parse_routed, unsupported_endpoint};
use crate::api::messages::MessagesRequest;
use crate::api::usage::Dialect;
use crate::api::{ErrorKind, GatewayError};
use crate::providers::ChatReply;
use crate::routing::{AttemptReply, AttemptRequest, RouteHandle, execute};

/// The client headers a native target receives.
const FORWARDED: &[&str] = &["anthropic-version", "anthropic-beta"];

pub(super) async fn handle(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    count_tokens: bool,
) -> Result<Response<Body>, GatewayError> {
    let (parts, msg, route) = parse_routed(ctx, rc, req, MessagesRequest::parse).await?;
    let path = if count_tokens {
        "/messages/count_tokens"
    } else {
        "/messages"
    };
    let stream = msg.stream && !count_tokens;
    if count_tokens && !any_native(ctx, &route, path) {
        return Err(GatewayError::invalid_param(
            "model",
            format!(
                "The model `{}` does not serve /v1/messages/count_tokens: only targets of kind `anthropic` count tokens.",
                route.spec.name
            ),
        )
        .with_code("unsupported_endpoint"));
    }
    let caps = &route.capabilities;
    if !count_tokens && (!caps.chat || (stream && !caps.chat_stream)) {
        return Err(unsupported_endpoint(&route.spec.name, "messages"));
    }
    let mut headers = HeaderMap::new();
    for name in FORWARDED {
        for v in parts.headers.get_all(*name) {
            headers.append(*name, v.clone());
        }
    }
    let request = AttemptRequest::Messages {
        path,
        body: Arc::new(msg.body),
        headers: Arc::new(headers),
        model: Arc::from(""),
        stream,
        wire_len: msg.wire_len,
    };
    let metrics = Arc::clone(&ctx.state.metrics);
    let served = execute(&ctx.rt.table, &route, &metrics, request).await?;
    let served = served.try_map(|value| match value {
        AttemptReply::Chat(v) => Ok(v),
        _ => Err(GatewayError::new(
            ErrorKind::Internal,
            "Provider answered messages with something else.",
        )),
    })?;
    // Native or translated, the answer is in Anthropic's format
    // (count_tokens answers carry no usage object).
    let (shape, dialect) = (ErrorShape::Anthropic, Dialect::Anthropic);
    match served.value {
        ChatReply::Full(body) => {
            rc.served_by(&served.provider, served.attempts);
            let prices = &ctx.rt.policy.prices;
            rc.charge_body(prices, &served.model, dialect, &body);
            let mut r = json_response(StatusCode::OK, body);
            served_by(r.headers_mut(), &served.provider, served.attempts);
            Ok(r)
        }
        ChatReply::Stream(_) => Ok(sse_reply(ctx, rc, &route, served, shape, dialect, false)),
    }
}

/// Whether some target of `route` serves `path` natively.
fn any_native(ctx: &Ctx, route: &RouteHandle, path: &str) -> bool {
    route.spec.targets.iter().any(|t| {
        ctx.rt
            .table
            .providers
            .get(&t.provider)
            .is_some_and(|h| h.provider.passes_through(path))
    })
}
