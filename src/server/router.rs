//! The router: one `match` of method and path to an endpoint.
//!
//! Place in the pipeline: called by the edge (`stack::dispatch`) with the
//! request context once the request holds a concurrency permit (or is a
//! health, readiness or metrics call, which bypass the limit). It records
//! the endpoint in the context, authenticates every `/v1/*` call, refuses a
//! method the path does not take (405 with `Allow`), and hands the request
//! to its endpoint in `endpoints/`. GET endpoints answer HEAD alike, without
//! the body. Must not contain endpoint logic or talk to upstreams.

use http::{HeaderValue, Method, Request, Response, header};

use super::access::allow;
use super::edge::context::RequestCtx;
use super::endpoints::{
    admin, chat, completions, dashboard, embeddings, health, messages, metrics, models, rerank,
    responses, responses_items, responses_stored,
};
use super::http::{Body, ReqBody};
use crate::api::{ErrorKind, GatewayError};
use crate::boxed::in_place;

/// The methods a path takes.
#[derive(Clone, Copy)]
enum Takes {
    Post,
    /// GET, and HEAD alike.
    Get,
    GetOrDelete,
}

impl Takes {
    fn allows(self, m: &Method) -> bool {
        match self {
            Takes::Post => m == Method::POST,
            Takes::Get => m == Method::GET || m == Method::HEAD,
            Takes::GetOrDelete => m == Method::GET || m == Method::DELETE,
        }
    }

    fn allow_header(self) -> &'static str {
        match self {
            Takes::Post => "POST",
            Takes::Get => "GET, HEAD",
            Takes::GetOrDelete => "GET, DELETE",
        }
    }
}

/// Routes one admitted request to its endpoint, filling in `rc`.
pub(super) async fn dispatch(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let path = std::mem::take(&mut rc.path);
    let result = route(rc, req, &path).await;
    rc.path = path;
    result
}

/// Every endpoint's future is boxed: unboxed, the largest (chat, about
/// 10 KB) made this future and every edge layer's around it 22 KB, and each
/// layer copied it as it wrapped it (8 % of the CPU of a chat request).
/// Boxed in place: `Box::pin` would still copy all of it once.
async fn route(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    path: &str,
) -> Result<Response<Body>, GatewayError> {
    use Takes::*;
    if path.starts_with("/v1/") {
        allow::authenticate(rc)?;
    }
    let method = req.method().clone();
    // The live page and its stats, where the policy puts them (never under /v1).
    let page = rc.rt.policy.server.dashboard.part(path);
    // Records the endpoint, then refuses a method the path does not take.
    let mut at = |endpoint: &'static str, takes: Takes| {
        rc.endpoint = endpoint;
        if takes.allows(&method) {
            Ok(())
        } else {
            Err(method_not_allowed(takes.allow_header()))
        }
    };
    let response = match path {
        "/v1/chat/completions" => {
            at("chat", Post)?;
            in_place(move || chat::handle(rc, req)).await
        }
        "/v1/embeddings" => {
            at("embeddings", Post)?;
            in_place(move || embeddings::handle(rc, req)).await
        }
        "/v1/responses" => {
            at("responses", Post)?;
            in_place(move || responses::handle(rc, req)).await
        }
        p if responses_items::is_items_path(p) => {
            at("responses", Get)?;
            in_place(move || responses_items::handle(rc, req, p)).await
        }
        p if p.starts_with("/v1/responses/") => {
            at("responses", GetOrDelete)?;
            in_place(move || responses_stored::handle(rc, req, p)).await
        }
        "/v1/completions" => {
            at("completions", Post)?;
            in_place(move || completions::handle(rc, req)).await
        }
        "/v1/rerank" => {
            at("rerank", Post)?;
            in_place(move || rerank::handle(rc, req)).await
        }
        "/v1/messages" | "/v1/messages/count_tokens" => {
            at("messages", Post)?;
            in_place(move || messages::handle(rc, req, path.ends_with("/count_tokens"))).await
        }
        "/v1/models" => {
            at("models", Get)?;
            models::list(rc)
        }
        p if p.starts_with("/v1/models/") => {
            at("models", Get)?;
            models::get(rc, &p["/v1/models/".len()..])
        }
        "/healthz" => {
            at("health", Get)?;
            health::live()
        }
        "/readyz" => {
            at("health", Get)?;
            health::ready(rc)
        }
        "/metrics" => {
            at("metrics", Get)?;
            in_place(move || metrics::handle(rc)).await
        }
        "/admin/reload" => {
            at("admin", Post)?;
            Box::pin(admin::reload(rc, &req)).await
        }
        _ if let Some(part) = page => {
            at("dashboard", Get)?;
            Box::pin(dashboard::handle(rc, &req, part)).await
        }
        _ => Err(
            GatewayError::new(ErrorKind::NotFound, format!("Unknown path {path:?}."))
                .with_code("unknown_url"),
        ),
    }?;
    Ok(if method == Method::HEAD {
        without_body(response)
    } else {
        response
    })
}

fn method_not_allowed(allow: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::MethodNotAllowed,
        format!("Method not allowed; this path accepts {allow}."),
    )
    .with_param(allow)
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
