//! Access control: who may call `/v1/*`, and which routes.
//!
//! Place in the pipeline: the router calls [`authenticate`] for every
//! `/v1/*` path (401 per `server.auth` for a caller without a configured
//! key); endpoints call [`allowed_route`] once they know the route the
//! request names (404 for an unknown one, 403 for one outside the caller's
//! key). The caller itself was identified when the request context was
//! made (`keys`). Must not check limits or budgets: that is `admission`.

use std::sync::Arc;

use super::keys::{Caller, model_not_allowed, unauthorized};
use crate::api::GatewayError;
use crate::routing::RouteHandle;
use crate::server::edge::context::RequestCtx;

/// Who is calling, for `/v1/*`: the caller's key alias goes into the
/// context; without a configured key on a gateway that requires one, 401.
pub(crate) fn authenticate(rc: &mut RequestCtx) -> Result<(), GatewayError> {
    match &rc.caller {
        Caller::Key(k) => {
            rc.key_alias = Arc::clone(&k.alias);
            Ok(())
        }
        Caller::Anonymous => Ok(()),
        Caller::Refused(why) => Err(unauthorized(why)),
    }
}

/// The route the model name `name` selects (its own name, an alias or a
/// `match` pattern; see `RouteTable::lookup`), if the caller may call it.
/// The name is kept in the context for the access log, found or not. A
/// key's `models` list names routes: it is checked against the route's
/// name, whatever name selected it.
pub(crate) fn allowed_route(
    rc: &mut RequestCtx,
    name: &str,
) -> Result<Arc<RouteHandle>, GatewayError> {
    rc.asked_for(name);
    let Some(found) = rc.rt.table.lookup(name) else {
        return Err(GatewayError::model_not_found(name));
    };
    let route = found.route;
    match rc.caller.key() {
        Some(k) if !k.allows(&route.spec.name) => Err(model_not_allowed(&k.alias, name)),
        _ => Ok(route),
    }
}

/// Whether the caller may see or call the route `name` (for listings).
pub(crate) fn may_call(rc: &RequestCtx, name: &str) -> bool {
    rc.caller.key().is_none_or(|k| k.allows(name))
}
