//! `GET` / `DELETE /v1/responses/{id}`: a stored response, read or
//! deleted (its input items: `responses_items`, which finds it the same
//! way).
//!
//! Place in the pipeline: called by the router. Only the client limit
//! applies (no route is named in a body). First the responses the gateway
//! keeps itself (translated routes, `flows::stored`): found among the
//! caller's own, it is answered from the state store, whichever replica
//! stored it. Otherwise `?model=ROUTE` names the route whose upstream
//! stored it (the route must be allowed for the caller): the call goes to
//! its first target that serves `/responses` natively (an openai-kind
//! one), in one attempt. Neither: 404, as the API answers. Must not reach
//! any other path of the upstream's API: the id is one plain segment.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::responses::PATH;
use crate::api::{ErrorKind, GatewayError};
use crate::providers::{Need, UpstreamError};
use crate::server::access::{admission, allow};
use crate::server::edge::context::RequestCtx;
use crate::server::flows::stored;
use crate::server::http::{Body, ReqBody, json_response, served_by};

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    full_path: &str,
) -> Result<Response<Body>, GatewayError> {
    admission::admit(rc, None, Default::default()).await?;
    let path = full_path.trim_start_matches("/v1");
    let id = plain_id(&path["/responses/".len()..], full_path)?;
    if let Some(answer) = kept_by_gateway(rc, req.method(), id).await? {
        return Ok(answer);
    }
    let route_name = query_param(req.uri().query(), "model").ok_or_else(|| not_found(id))?;
    from_upstream(rc, route_name, id, req.method().clone(), path).await
}

/// `id` if it is one plain segment (nothing else of the upstream's API is
/// reachable through it), else the 404 of an unknown path.
pub(super) fn plain_id<'a>(id: &'a str, full_path: &str) -> Result<&'a str, GatewayError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(
            GatewayError::new(ErrorKind::NotFound, format!("Unknown path {full_path:?}."))
                .with_code("unknown_url"),
        );
    }
    Ok(id)
}

/// The first value of `name` in a query string, as sent.
pub(super) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// `method path` (path and query, under the API's root) at the first
/// target of the route `route_name` (allowed for the caller) that serves
/// `/responses` natively, in one attempt: the response `id` stored by
/// that upstream.
pub(super) async fn from_upstream(
    rc: &mut RequestCtx,
    route_name: &str,
    id: &str,
    method: Method,
    path: &str,
) -> Result<Response<Body>, GatewayError> {
    let route = allow::allowed_route(rc, route_name)?;
    rc.routed(&route);
    let table = &rc.rt.table;
    let Some(handle) = route
        .spec
        .targets
        .iter()
        .filter_map(|t| table.providers.get(&t.provider))
        .find(|h| h.capabilities.serves(Need::Native(PATH)))
        .cloned()
    else {
        // Its targets are translated: the gateway would have kept it.
        return Err(not_found(id));
    };
    match handle.provider.stored(method, path).await {
        Ok(body) => {
            rc.served_by(&handle.name, 1);
            let mut r = json_response(StatusCode::OK, body);
            served_by(r.headers_mut(), &handle.name, 1);
            Ok(r)
        }
        Err(
            UpstreamError::Status { status, body, .. }
            | UpstreamError::Classified { status, body, .. },
        ) if (400..500).contains(&status) => Err(GatewayError::new(
            ErrorKind::Upstream { status, body },
            format!("The upstream rejected the request (status {status})."),
        )),
        Err(e) => Err(GatewayError::new(
            ErrorKind::BadGateway,
            format!("{}: {e}", handle.name),
        )),
    }
}

/// The API's 404 for a response id nobody keeps.
pub(super) fn not_found(id: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        format!(
            "Response with id '{id}' not found. (The gateway keeps the responses of translated \
             routes; for one stored by an upstream provider add `?model=ROUTE` to the URL.)"
        ),
    )
}

/// The caller's response `id` as the gateway keeps it, if it has one by
/// that id on a route it may still call (labelled with that route).
pub(super) async fn kept_record(
    rc: &mut RequestCtx,
    id: &str,
) -> Result<Option<stored::Record>, GatewayError> {
    let Some(record) = stored::load(rc, id).await? else {
        return Ok(None);
    };
    if !allow::may_call(rc, &record.route) {
        return Ok(None);
    }
    if let Some(route) = rc.rt.table.routes.get(&record.route) {
        rc.route_label = Arc::clone(&route.label);
    }
    Ok(Some(record))
}

/// The answer for a response the gateway keeps itself, if the caller has
/// one by that id (on a route it may still call).
async fn kept_by_gateway(
    rc: &mut RequestCtx,
    method: &Method,
    id: &str,
) -> Result<Option<Response<Body>>, GatewayError> {
    let Some(record) = kept_record(rc, id).await? else {
        return Ok(None);
    };
    let body = if method == Method::DELETE {
        stored::delete(rc, id).await?;
        json!({"id": id, "object": "response", "deleted": true})
    } else {
        record.response
    };
    Ok(Some(json_response(StatusCode::OK, body.to_string())))
}
