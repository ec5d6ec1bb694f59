//! `POST /admin/reload`: reload the policy folder now.
//!
//! Place in the pipeline: called by the router. With
//! `server.admin_token_env` set, the caller must send that token
//! (`access::admin`: a bearer token or a Basic password, compared in
//! constant time); the reload runs parse ->
//! validate -> build -> swap like every other trigger, and a refused policy
//! answers 422 with every error at `file:line` while the running policy
//! stays. Must not leak the token.

use http::{Request, Response, StatusCode};
use serde_json::json;

use crate::api::GatewayError;
use crate::server::access::admin;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, ReqBody, json_response};
use crate::server::state::ReloadOutcome;

pub(crate) async fn reload(
    rc: &RequestCtx,
    req: &Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    if !admin::authorized(rc.rt.policy.server.admin_token.as_ref(), req.headers()) {
        return Err(admin::refused());
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
