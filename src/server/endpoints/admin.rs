//! `POST /admin/reload`: reload the policy folder now.
//!
//! Place in the pipeline: called by the router. With
//! `server.admin_token_env` set, the caller must send that token as a
//! bearer token (compared in constant time); the reload runs parse ->
//! validate -> build -> swap like every other trigger, and a refused policy
//! answers 422 with every error at `file:line` while the running policy
//! stays. Must not leak the token.

use http::{Request, Response, StatusCode, header};
use serde_json::json;

use crate::api::{ErrorKind, GatewayError};
use crate::server::access::keys::constant_time_eq;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, ReqBody, json_response};
use crate::server::state::ReloadOutcome;

pub(crate) async fn reload(
    rc: &RequestCtx,
    req: &Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    if !authorized(rc, req) {
        return Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "A valid admin bearer token is required.",
        )
        .with_code("invalid_admin_token"));
    }
    match rc.state.reload("admin", true).await {
        Ok(ReloadOutcome::Reloaded { generation })
        | Ok(ReloadOutcome::Unchanged { generation }) => Ok(json_response(
            StatusCode::OK,
            json!({"status": "reloaded", "policy_generation": generation}).to_string(),
        )),
        Err(errors) => Err(GatewayError::invalid_policy(
            errors.0.iter().map(ToString::to_string).collect(),
        )),
    }
}

fn authorized(rc: &RequestCtx, req: &Request<ReqBody>) -> bool {
    let Some(token) = &rc.rt.policy.server.admin_token else {
        return true;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Length-independent comparison of the whole token.
    constant_time_eq(token.expose().as_bytes(), given.as_bytes())
}
