//! Per-request routing overrides an SDK can send, for callers whose key
//! allows them.
//!
//! Place in the pipeline: `endpoints::parse_routed` calls [`apply`] once
//! the route is found and the caller allowed on it, before admission. The
//! headers are `x-switchyard-route-strategy` (a strategy name) and
//! `x-switchyard-targets` (the route's targets to use, in order, by
//! provider or `provider/model`); each is honoured only when the caller's
//! key lists it in `overrides` (403 `override_not_allowed` otherwise, so a
//! header that would be ignored is never silently ignored), and a value the
//! route cannot take is a 400 `invalid_override`. Without either header the
//! route is used as configured. Must not route: `routing` builds the
//! overridden route.

use std::sync::Arc;

use http::HeaderMap;
use http::header::HeaderName;

use crate::api::{ErrorKind, GatewayError};
use crate::routing::RouteHandle;
use crate::server::edge::context::RequestCtx;

pub(crate) const STRATEGY: &str = "x-switchyard-route-strategy";
pub(crate) const TARGETS: &str = "x-switchyard-targets";

/// The headers, named once (a name given as text is parsed on every lookup).
static STRATEGY_HEADER: HeaderName = HeaderName::from_static(STRATEGY);
static TARGETS_HEADER: HeaderName = HeaderName::from_static(TARGETS);

/// The route as this request may see it.
pub(crate) fn apply(
    rc: &RequestCtx,
    headers: &HeaderMap,
    route: Arc<RouteHandle>,
) -> Result<Arc<RouteHandle>, GatewayError> {
    if !any_override(headers) {
        return Ok(route);
    }
    let strategy = text(headers, &STRATEGY_HEADER)?;
    let targets = text(headers, &TARGETS_HEADER)?;
    if strategy.is_none() && targets.is_none() {
        return Ok(route);
    }
    let may = rc
        .caller
        .key()
        .map(|k| k.spec.overrides)
        .unwrap_or_default();
    for (asked, allowed, header) in [
        (strategy.is_some(), may.strategy, STRATEGY),
        (targets.is_some(), may.targets, TARGETS),
    ] {
        if asked && !allowed {
            return Err(GatewayError::new(
                ErrorKind::Forbidden,
                format!(
                    "This key may not send `{header}`: its policy does not allow overriding the route."
                ),
            )
            .with_code("override_not_allowed"));
        }
    }
    route
        .overridden(&rc.rt.table, strategy, targets)
        .map(Arc::new)
        .map_err(|e| {
            GatewayError::invalid(format!("The routing override cannot be used: {e}."))
                .with_code("invalid_override")
        })
}

/// Whether the request sends any `x-switchyard-` header: one look at each
/// name, cheaper than the two hashed lookups where none is sent (nearly
/// always).
fn any_override(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().as_bytes().starts_with(b"x-switchyard-"))
}

/// A header's value as text; a value that is not is the client's error.
fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, GatewayError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| {
            GatewayError::invalid(format!("The `{name}` header is not plain text."))
                .with_code("invalid_override")
        }),
    }
}
