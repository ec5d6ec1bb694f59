//! One file per endpoint: its whole server-side flow.
//!
//! Place in the pipeline: the router's `match` calls one `handle` here with
//! the request context and the request. An endpoint parses its body (wire
//! types in `api/`), finds and admits its route ([`parse_routed`]: the
//! caller's key must allow it, every limit and budget is checked once),
//! describes its upstream work as a [`Call`](crate::routing::Call) when it
//! has any, and hands it to one of the shared flows (`flows::call`,
//! `flows::chat_stream`, `flows::items`). Must not talk HTTP to upstreams
//! or map errors to statuses: errors go back as `GatewayError`s.

pub(crate) mod admin;
pub(crate) mod chat;
pub(crate) mod completions;
pub(crate) mod dashboard;
pub(crate) mod embeddings;
pub(crate) mod embeddings_call;
pub(crate) mod health;
pub(crate) mod messages;
pub(crate) mod metrics;
pub(crate) mod models;
pub(crate) mod rerank;
pub(crate) mod responses;
pub(crate) mod responses_items;
pub(crate) mod responses_stored;
#[cfg(test)]
mod sizes_tests;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};

use crate::api::GatewayError;
use crate::api::affinity::conversation_key;
use crate::api::estimate::{Estimate, Routed};
use crate::api::ignored::Ignored;
use crate::config::AffinityBy;
use crate::routing::RouteHandle;
use crate::server::access::{admission, allow, overrides};
use crate::server::edge::context::RequestCtx;
use crate::server::http::{ReqBody, read_body};

/// What every routed endpoint does first: read the body, parse it, find
/// the route it names (the caller's key must allow it; with the routing
/// overrides the key allows; recorded in the context, with the request's
/// conversation key on a route with `affinity`), and admit it (every limit
/// and budget, the token estimate reserved).
pub(crate) async fn parse_routed<T: Routed>(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    parse: fn(&[u8]) -> Result<T, GatewayError>,
) -> Result<(http::request::Parts, T, Arc<RouteHandle>), GatewayError> {
    parse_routed_bytes(rc, req, |b| parse(b)).await
}

/// [`parse_routed`] for a parser that keeps the body's bytes (chat: no
/// copy of a large body).
pub(crate) async fn parse_routed_bytes<T: Routed>(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    parse: impl FnOnce(&Bytes) -> Result<T, GatewayError>,
) -> Result<(http::request::Parts, T, Arc<RouteHandle>), GatewayError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts, body, rc.rt.policy.server.max_body_bytes).await?;
    let parsed = parse(&bytes)?;
    let estimate = Estimate::of(bytes.len(), parsed.max_output_tokens());
    drop(bytes);
    let route = allow::allowed_route(rc, parsed.model())?;
    let route = overrides::apply(rc, &parts.headers, route)?;
    rc.routed(&route);
    rc.conversation = route.spec.affinity.as_ref().and_then(|a| {
        let header = match &a.by {
            AffinityBy::Header(name) => parts.headers.get(name).map(|v| v.as_bytes()),
            _ => None,
        };
        conversation_key(&a.by, parsed.body()?, header)
    });
    admission::admit(rc, Some(&route), estimate).await?;
    Ok((parts, parsed, route))
}

/// A route whose targets cannot serve this endpoint.
pub(crate) fn unsupported_endpoint(route: &str, what: &str) -> GatewayError {
    GatewayError::invalid_param(
        "model",
        format!("The model `{route}` does not serve {what}: its targets cannot."),
    )
    .with_code("unsupported_endpoint")
}

/// A request no target of `route` can serve because it holds a feature
/// chat cannot express (`what`): a 400 naming the feature and the route,
/// worded alike for the Messages and Responses APIs (`api`).
pub(crate) fn refused_feature(route: &str, api: &str, what: &str) -> GatewayError {
    GatewayError::invalid(format!(
        "The model `{route}` cannot serve {what}: its targets answer the {api} through \
         stateless chat completions."
    ))
    .with_code("unsupported_feature")
}

/// What the translated attempt that served a request ignored; written by
/// the attempt, read by its endpoint once the answer is ready.
#[derive(Debug, Clone, Default)]
pub(crate) struct IgnoredSlot(Arc<Mutex<Option<Ignored>>>);

impl IgnoredSlot {
    /// The serving attempt's list (the last write wins: only a successful
    /// attempt writes).
    pub(crate) fn set(&self, ignored: Ignored) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(ignored);
    }

    /// Names what was ignored in `x-switchyard-ignored` and counts each
    /// field in `switchyard_ignored_fields_total`.
    pub(crate) fn write(&self, rc: &RequestCtx, route: &RouteHandle, headers: &mut HeaderMap) {
        let Some(ignored) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let Some(value) = ignored.header_value() else {
            return;
        };
        for f in ignored.fields() {
            rc.state
                .metrics
                .ignored_fields
                .with_label_values(&[route.spec.name.as_str(), f.label])
                .inc();
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert("x-switchyard-ignored", v);
        }
    }
}
