//! Request dispatch, per-client limits, and the small endpoints.
//!
//! Place in the pipeline: called by `stack` once a request is admitted. It
//! applies the per-client rate limit to API calls and dispatches by method
//! and path, recording the endpoint and route in the request context. The
//! health, readiness, metrics, models and admin endpoints live here; chat and
//! embeddings have their own files. Must not talk to upstreams directly.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;

use super::context::RequestCtx;
use super::http::{Body, ReqBody, json_response, read_body};
use super::keys::{Caller, constant_time_eq, model_not_allowed, presented_key, unauthorized};
use super::state::{AppState, ReloadOutcome, Runtime};
use super::{chat, completions, embeddings, messages, rerank, responses};
use crate::api::estimate::{Routed, estimate_tokens};
use crate::api::{self, ErrorKind, GatewayError};
use crate::config::CacheScope;
use crate::metrics::UNKNOWN_ROUTE;
use crate::routing::RouteHandle;

/// What one request sees: the gateway and the runtime snapshot it started on.
pub(super) struct Ctx {
    pub state: Arc<AppState>,
    pub rt: Arc<Runtime>,
    pub client_key: String,
    pub caller: Caller,
}

/// The route label for metrics: a configured route, else a fixed placeholder.
fn route_label(rt: &Runtime, model: &str) -> String {
    if rt.table.routes.contains_key(model) {
        model.to_string()
    } else {
        UNKNOWN_ROUTE.to_string()
    }
}

pub(super) fn client_key<B>(req: &Request<B>, peer: SocketAddr) -> String {
    match presented_key(req.headers()) {
        // Only a hash of the key is kept, never the key itself.
        Some(key) => {
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            format!("key:{:016x}", h.finish())
        }
        None => format!("ip:{}", peer.ip()),
    }
}

/// Who is calling, for `/v1/*`: the caller's key alias goes into the
/// context; without a configured key on a gateway that requires one, 401.
fn authenticate(ctx: &Ctx, rc: &mut RequestCtx) -> Result<(), GatewayError> {
    match &ctx.caller {
        Caller::Key(k) => {
            rc.key_alias = Arc::clone(&k.alias);
            Ok(())
        }
        Caller::Anonymous => Ok(()),
        Caller::Refused(why) => Err(unauthorized(why)),
    }
}

impl Ctx {
    /// `base` (a route name or an item's parameters, part of every cache
    /// key of the request) scoped per the route's `cache.scope`: as is when
    /// shared, with the caller's key alias (or the hash of the key it sent,
    /// or its address, on an open gateway) when per key.
    pub(super) fn cache_namespace<'a>(
        &self,
        route: &RouteHandle,
        base: &'a str,
    ) -> std::borrow::Cow<'a, str> {
        match route.spec.cache.scope {
            CacheScope::Shared => std::borrow::Cow::Borrowed(base),
            CacheScope::PerKey => {
                let who = match self.caller.key() {
                    Some(k) => &*k.alias,
                    None => self.client_key.as_str(),
                };
                std::borrow::Cow::Owned(format!("{base}\0{who}"))
            }
        }
    }
}

/// The route `name`, if it exists and the caller may call it.
pub(super) fn allowed_route(ctx: &Ctx, name: &str) -> Result<Arc<RouteHandle>, GatewayError> {
    let Some(route) = ctx.rt.table.routes.get(name) else {
        return Err(GatewayError::model_not_found(name));
    };
    match ctx.caller.key() {
        Some(k) if !k.allows(name) => Err(model_not_allowed(&k.alias, name)),
        _ => Ok(Arc::clone(route)),
    }
}

fn method_not_allowed(allow: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::MethodNotAllowed,
        format!("Method not allowed; this path accepts {allow}."),
    )
    .with_param(allow)
}

/// The request id sanitiser: a client's `x-request-id` is kept when it is
/// a sane token (1..=128 visible ASCII characters), else replaced by
/// [`fresh_request_id`].
pub(super) fn sane_request_id(given: &HeaderValue) -> bool {
    let v = given.as_bytes();
    !v.is_empty() && v.len() <= 128 && v.iter().all(u8::is_ascii_graphic)
}

/// A new request id: 32 hex digits.
pub(super) fn fresh_request_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// Routes one admitted request to its endpoint, filling in `rc`.
pub(super) async fn dispatch(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let method = req.method().clone();
    let only = |allowed: &Method, allow: &str| {
        if method == *allowed {
            Ok(())
        } else {
            Err(method_not_allowed(allow))
        }
    };
    // GET endpoints answer HEAD alike, without the body.
    let head = method == Method::HEAD;
    let read_only = || {
        if method == Method::GET || head {
            Ok(())
        } else {
            Err(method_not_allowed("GET, HEAD"))
        }
    };
    let path = rc.path.clone();
    if path.starts_with("/v1/") {
        authenticate(ctx, rc)?;
    }
    let response = match path.as_str() {
        "/v1/chat/completions" => {
            rc.endpoint = "chat";
            only(&Method::POST, "POST")?;
            check_client_limit(ctx)?;
            chat::handle(ctx, rc, req).await
        }
        "/v1/embeddings" => {
            rc.endpoint = "embeddings";
            only(&Method::POST, "POST")?;
            check_client_limit(ctx)?;
            embeddings::handle(ctx, rc, req).await
        }
        "/v1/responses" => {
            rc.endpoint = "responses";
            only(&Method::POST, "POST")?;
            check_client_limit(ctx)?;
            responses::handle(ctx, rc, req).await
        }
        p if p.starts_with("/v1/responses/") => {
            rc.endpoint = "responses";
            if method != Method::GET && method != Method::DELETE {
                return Err(method_not_allowed("GET, DELETE"));
            }
            check_client_limit(ctx)?;
            responses::stored(ctx, rc, &req).await
        }
        "/v1/completions" => {
            rc.endpoint = "completions";
            only(&Method::POST, "POST")?;
            check_client_limit(ctx)?;
            completions::handle(ctx, rc, req).await
        }
        "/v1/rerank" => {
            rc.endpoint = "rerank";
            only(&Method::POST, "POST")?;
            check_client_limit(ctx)?;
            rerank::handle(ctx, rc, req).await
        }
        "/v1/messages" | "/v1/messages/count_tokens" => {
            rc.endpoint = "messages";
            only(&Method::POST, "POST")?;
            check_client_limit(ctx)?;
            messages::handle(ctx, rc, req, path.ends_with("/count_tokens")).await
        }
        "/v1/models" => {
            rc.endpoint = "models";
            read_only()?;
            Ok(json_response(
                StatusCode::OK,
                api::models_body(
                    ctx.rt
                        .table
                        .routes
                        .keys()
                        .map(String::as_str)
                        .filter(|r| ctx.caller.key().is_none_or(|k| k.allows(r))),
                ),
            ))
        }
        p if p.starts_with("/v1/models/") => {
            rc.endpoint = "models";
            let id = &p["/v1/models/".len()..];
            rc.route = route_label(&ctx.rt, id);
            read_only()?;
            allowed_route(ctx, id)?;
            Ok(json_response(
                StatusCode::OK,
                json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"})
                    .to_string(),
            ))
        }
        "/healthz" => {
            rc.endpoint = "health";
            read_only()?;
            Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#))
        }
        "/readyz" => {
            rc.endpoint = "health";
            read_only()?;
            let (status, text) = if ctx.state.is_draining() {
                (StatusCode::SERVICE_UNAVAILABLE, "draining")
            } else {
                (StatusCode::OK, "ready")
            };
            let body = json!({"status": text, "policy_generation": ctx.rt.generation});
            Ok(json_response(status, body.to_string()))
        }
        "/metrics" => {
            rc.endpoint = "metrics";
            read_only()?;
            Ok(metrics_response(ctx).await)
        }
        "/admin/reload" => {
            rc.endpoint = "admin";
            only(&Method::POST, "POST")?;
            admin_reload(ctx, &req).await
        }
        _ => Err(
            GatewayError::new(ErrorKind::NotFound, format!("Unknown path {path:?}."))
                .with_code("unknown_url"),
        ),
    }?;
    Ok(if head {
        without_body(response)
    } else {
        response
    })
}

/// A HEAD answer: the GET answer's status and headers (its length
/// included, when known), no body.
fn without_body(response: Response<Body>) -> Response<Body> {
    use hyper::body::Body as _;
    let (mut parts, body) = response.into_parts();
    if let Some(len) = body.size_hint().exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, super::http::full(bytes::Bytes::new()))
}

/// Turns a spent bucket into a 429 for `scope`, counting it.
fn admit(ctx: &Ctx, scope: &str, checked: Result<(), Duration>) -> Result<(), GatewayError> {
    checked.map_err(|wait| {
        ctx.state
            .metrics
            .rate_limited
            .with_label_values(&[scope])
            .inc();
        GatewayError::rate_limited(scope, wait)
    })
}

fn check_client_limit(ctx: &Ctx) -> Result<(), GatewayError> {
    match &ctx.rt.client_limiter {
        Some(limiter) => admit(ctx, "client", limiter.check(&ctx.client_key)),
        None => Ok(()),
    }
}

/// What chat and embeddings share before their own pipeline: read the body,
/// parse it, find the route it names (recorded in `rc`) and take a token
/// from the route limit.
pub(super) async fn parse_routed<T: Routed>(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    parse: fn(&[u8]) -> Result<T, GatewayError>,
) -> Result<(http::request::Parts, T, Arc<RouteHandle>), GatewayError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts, body, ctx.rt.policy.server.max_body_bytes).await?;
    let parsed = parse(&bytes)?;
    let estimate = estimate_tokens(bytes.len(), parsed.max_output_tokens());
    drop(bytes);
    let route = allowed_route(ctx, parsed.model())?;
    rc.routed(&route.spec.name);
    if let Some(limiter) = &route.limiter {
        admit(ctx, "route", limiter.check())?;
    }
    // Key RPM/TPM, route TPM and budgets: one store call, all or nothing.
    rc.settlement = super::admission::admit(ctx, &route, estimate).await?;
    Ok((parts, parsed, route))
}

/// A route whose targets cannot serve this endpoint.
pub(super) fn unsupported_endpoint(route: &str, what: &str) -> GatewayError {
    GatewayError::invalid_param(
        "model",
        format!("The model `{route}` does not serve {what}: its targets cannot."),
    )
    .with_code("unsupported_endpoint")
}

async fn metrics_response(ctx: &Ctx) -> Response<Body> {
    let m = &ctx.state.metrics;
    let (bytes, entries) = ctx.rt.cache.usage().await;
    m.cache_bytes.set(bytes as i64);
    m.cache_entries.set(entries as i64);
    let mut r = Response::new(super::http::full(m.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

fn authorized(ctx: &Ctx, req: &Request<ReqBody>) -> bool {
    let Some(token) = &ctx.rt.policy.server.admin_token else {
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

async fn admin_reload(ctx: &Ctx, req: &Request<ReqBody>) -> Result<Response<Body>, GatewayError> {
    if !authorized(ctx, req) {
        return Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "A valid admin bearer token is required.",
        )
        .with_code("invalid_admin_token"));
    }
    match ctx.state.reload("admin", true).await {
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
