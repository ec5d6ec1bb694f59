//! `GET /v1/models` and `GET /v1/models/{id}`: the routes the caller may
//! call, as OpenAI model objects.
//!
//! Place in the pipeline: called by the router. No limits apply (nothing
//! is sent upstream). Must not list routes outside the caller's key.

use http::{Response, StatusCode};
use serde_json::json;

use crate::api::{self, GatewayError};
use crate::server::access::allow;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, json_response};

/// `GET /v1/models`: every route the caller may call.
pub(crate) fn list(rc: &RequestCtx) -> Result<Response<Body>, GatewayError> {
    let routes = rc.rt.table.routes.keys().map(String::as_str);
    let body = api::models_body(routes.filter(|r| allow::may_call(rc, r)));
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /v1/models/{id}`: one route, if the caller may call it.
pub(crate) fn get(rc: &mut RequestCtx, id: &str) -> Result<Response<Body>, GatewayError> {
    if rc.rt.table.routes.contains_key(id) {
        rc.route_label = id.to_string();
    }
    allow::allowed_route(rc, id)?;
    let body = json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"});
    Ok(json_response(StatusCode::OK, body.to_string()))
}
