//! `GET /v1/models` and `GET /v1/models/{id}`: the routes the caller may
//! call, as OpenAI model objects.
//!
//! Place in the pipeline: called by the router. No limits apply (nothing
//! is sent upstream). The list holds the concrete names: every route's
//! name and alias (a `match` pattern is no model name, so it is not
//! listed); one model is found as a request's `model` would be (a name a
//! pattern matches is found too). Must not list routes outside the
//! caller's key.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::json;

use crate::api::{self, GatewayError};
use crate::server::access::allow;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, json_response};

/// `GET /v1/models`: every route and alias the caller may call, by name.
pub(crate) fn list(rc: &RequestCtx) -> Result<Response<Body>, GatewayError> {
    let table = &rc.rt.table;
    // (name, the route it selects)
    let mut names: Vec<(&str, &str)> = table
        .routes
        .keys()
        .map(|r| (r.as_str(), r.as_str()))
        .collect();
    names.extend(table.names.aliases());
    names.retain(|(_, route)| allow::may_call(rc, route));
    names.sort_unstable();
    let body = api::models_body(names.into_iter().map(|(name, _)| name));
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /v1/models/{id}`: one model name, if it selects a route the
/// caller may call.
pub(crate) fn get(rc: &mut RequestCtx, id: &str) -> Result<Response<Body>, GatewayError> {
    if let Some(found) = rc.rt.table.lookup(id) {
        rc.route_label = Arc::clone(&found.route.label);
    }
    allow::allowed_route(rc, id)?;
    let body = json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"});
    Ok(json_response(StatusCode::OK, body.to_string()))
}
