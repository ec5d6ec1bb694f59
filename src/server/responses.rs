//! `POST /v1/responses`: the OpenAI Responses API, per target passed
//! through or translated to chat completions.
//!
//! Place in the pipeline: called by `router` with the request context. The
//! body is parsed once; when some target of the route does not pass
//! `/responses` through, it is translated to one chat request here, once,
//! and `routing::responses` picks per attempt. A request a route cannot
//! serve at all (built-in tools, `previous_response_id`, `store: true`, ...
//! on a route whose every target is translated) is refused with a 400
//! naming the feature and the route. Never cached. Streams are piped as
//! chat streams are (whole events, in-band error at a mid-stream failure).
//! `GET` / `DELETE /v1/responses/{id}?model=ROUTE` go to the route's first
//! target that stores responses (an openai-kind one), else 400.
//! Must not alter a passthrough body beyond `model`.

use std::sync::Arc;

use http::{Request, Response, StatusCode};

use super::chat::{served_by, sse_reply};
use super::context::RequestCtx;
use super::http::ErrorShape;
use super::http::{Body, ReqBody, json_response};
use super::router::{Ctx, parse_routed, unsupported_endpoint};
use crate::api::responses::request::to_chat;
use crate::api::responses::{Echo, ResponsesError, ResponsesRequest};
use crate::api::usage::Dialect;
use crate::api::{ErrorKind, GatewayError};
use crate::providers::ChatReply;
use crate::routing::responses::{PATH, ResponsesCall};
use crate::routing::{AttemptReply, AttemptRequest, execute};

pub(super) async fn handle(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (_parts, request, route) = parse_routed(ctx, rc, req, ResponsesRequest::parse).await?;
    let caps = &route.capabilities;
    if !caps.chat || (request.stream && !caps.chat_stream) {
        return Err(unsupported_endpoint(&route.spec.name, "the Responses API"));
    }
    let table = &ctx.rt.table;
    let passes: Vec<bool> = route
        .spec
        .targets
        .iter()
        .filter_map(|t| table.providers.get(&t.provider))
        .map(|h| h.provider.passes_through(PATH))
        .collect();
    let (chat, echo) = if passes.iter().all(|p| *p) {
        (None, Echo::default())
    } else {
        let chat = to_chat(&request.body);
        if let Err(e) = &chat
            && !passes.iter().any(|p| *p)
        {
            return Err(refused(&route.spec.name, e));
        }
        (Some(chat), Echo::of(&request.body))
    };
    let stream = request.stream;
    let call = Arc::new(ResponsesCall {
        request,
        chat,
        echo,
    });
    let attempt = AttemptRequest::Responses {
        call,
        model: Arc::from(""),
    };
    let served = execute(table, &route, &ctx.state.metrics, attempt).await?;
    let served = served.try_map(|value| match value {
        AttemptReply::Chat(value) => Ok(value),
        _ => Err(GatewayError::new(
            ErrorKind::Internal,
            "Provider answered the Responses API with embeddings.",
        )),
    })?;
    // Passed through or translated, the answer is in the Responses format.
    let (shape, dialect) = (ErrorShape::OpenAi, Dialect::Responses);
    match served.value {
        ChatReply::Stream(_) if stream => {
            Ok(sse_reply(ctx, rc, &route, served, shape, dialect, false))
        }
        ChatReply::Full(body) if !stream => {
            rc.served_by(&served.provider, served.attempts);
            let prices = &ctx.rt.policy.prices;
            rc.charge_body(prices, &served.model, dialect, &body);
            let mut r = json_response(StatusCode::OK, body);
            served_by(r.headers_mut(), &served.provider, served.attempts);
            Ok(r)
        }
        _ => Err(GatewayError::new(
            ErrorKind::BadGateway,
            "The upstream answered a stream for a JSON request, or JSON for a stream.",
        )),
    }
}

/// A request no target of `route` can serve, as a 400 naming what and where.
fn refused(route: &str, e: &ResponsesError) -> GatewayError {
    match e {
        ResponsesError::Unsupported(what) => GatewayError::invalid(format!(
            "The model `{route}` cannot serve {what}: its targets answer the Responses API \
             through stateless chat completions."
        ))
        .with_code("unsupported_feature"),
        ResponsesError::Invalid(m) | ResponsesError::BadAnswer(m) => {
            GatewayError::invalid(m.clone()).with_code("invalid_request")
        }
    }
}

/// `GET` / `DELETE /v1/responses/{id}?model=ROUTE`: a stored response, from
/// the route's first target that passes `/responses` through (one attempt:
/// the response lives at that upstream only).
pub(super) async fn stored(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: &Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let path = rc.path.trim_start_matches("/v1").to_string();
    let id = &path["/responses/".len()..];
    // One plain segment: nothing else of the upstream's API is reachable.
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(
            GatewayError::new(ErrorKind::NotFound, format!("Unknown path {:?}.", rc.path))
                .with_code("unknown_url"),
        );
    }
    let route_name = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("model="))
        .ok_or_else(|| {
            GatewayError::invalid_param(
                "model",
                "Name the route that created the response: add `?model=ROUTE` to the URL.",
            )
        })?;
    let route = super::router::allowed_route(ctx, route_name)?;
    rc.routed(&route.spec.name);
    let table = &ctx.rt.table;
    let Some(handle) = route
        .spec
        .targets
        .iter()
        .filter_map(|t| table.providers.get(&t.provider))
        .find(|h| h.provider.passes_through(PATH))
    else {
        return Err(GatewayError::invalid(format!(
            "The model `{}` cannot retrieve or delete stored responses: its targets answer the \
             Responses API through stateless chat completions and store nothing.",
            route.spec.name
        ))
        .with_code("unsupported_feature"));
    };
    let name = handle.spec.name.as_str();
    match handle.provider.stored(req.method().clone(), &path).await {
        Ok(body) => {
            rc.served_by(name, 1);
            let mut r = json_response(StatusCode::OK, body);
            served_by(r.headers_mut(), name, 1);
            Ok(r)
        }
        Err(
            crate::providers::UpstreamError::Status { status, body, .. }
            | crate::providers::UpstreamError::Classified { status, body, .. },
        ) if (400..500).contains(&status) => Err(GatewayError::new(
            ErrorKind::Upstream { status, body },
            format!("The upstream rejected the request (status {status})."),
        )),
        Err(e) => Err(GatewayError::new(
            ErrorKind::BadGateway,
            format!("{name}: {}", e.describe()),
        )),
    }
}
