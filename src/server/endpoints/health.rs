//! `GET /healthz` and `GET /readyz`: liveness and readiness.
//!
//! Place in the pipeline: called by the router, outside the concurrency
//! limit (the edge's health bypass), so orchestrators see a saturated
//! gateway as alive. Readiness turns 503 while the gateway drains. Must not
//! do I/O.

use http::{Response, StatusCode};
use serde_json::json;

use crate::api::GatewayError;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, json_response};

/// `GET /healthz`: the process answers.
pub(crate) fn live() -> Result<Response<Body>, GatewayError> {
    Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#))
}

/// `GET /readyz`: ready for traffic (not draining), with the policy
/// generation it runs.
pub(crate) fn ready(rc: &RequestCtx) -> Result<Response<Body>, GatewayError> {
    let (status, text) = if rc.state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ready")
    };
    let body = json!({"status": text, "policy_generation": rc.rt.generation});
    Ok(json_response(status, body.to_string()))
}
