//! `GET` / `DELETE /v1/responses/{id}?model=ROUTE`: a response stored
//! upstream, read or deleted.
//!
//! Place in the pipeline: called by the router. Only the client limit
//! applies (no route is named in a body); the route named by `?model=`
//! must be allowed for the caller. The call goes to the route's first
//! target that serves `/responses` natively (an openai-kind one), in one
//! attempt: the response lives at that upstream only. A route with none
//! answers 400. Must not reach any other path of the upstream's API: the
//! id is one plain segment.

use http::{Request, Response, StatusCode};

use super::responses::PATH;
use crate::api::{ErrorKind, GatewayError};
use crate::providers::{Need, UpstreamError};
use crate::server::access::{admission, allow};
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, ReqBody, json_response, served_by};

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    full_path: &str,
) -> Result<Response<Body>, GatewayError> {
    admission::admit(rc, None, Default::default()).await?;
    let path = full_path.trim_start_matches("/v1");
    let id = &path["/responses/".len()..];
    // One plain segment: nothing else of the upstream's API is reachable.
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(
            GatewayError::new(ErrorKind::NotFound, format!("Unknown path {full_path:?}."))
                .with_code("unknown_url"),
        );
    }
    let route_name = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("model="))
        .ok_or_else(|| {
            GatewayError::invalid_param(
                "model",
                "Name the route that created the response: add `?model=ROUTE` to the URL.",
            )
        })?;
    let route = allow::allowed_route(rc, route_name)?;
    rc.routed(&route);
    let table = &rc.rt.table;
    let Some(handle) = route
        .spec
        .targets
        .iter()
        .filter_map(|t| table.providers.get(&t.provider))
        .find(|h| h.capabilities.serves(Need::Native(PATH)))
        .cloned()
    else {
        return Err(GatewayError::invalid(format!(
            "The model `{}` cannot retrieve or delete stored responses: its targets answer the \
             Responses API through stateless chat completions and store nothing.",
            route.spec.name
        ))
        .with_code("unsupported_feature"));
    };
    match handle.provider.stored(req.method().clone(), path).await {
        Ok(body) => {
            rc.served_by(&handle.name, 1);
            let mut r = json_response(StatusCode::OK, body);
            served_by(r.headers_mut(), &handle.name, 1);
            Ok(r)
        }
        Err(
            UpstreamError::Status { status, body, .. }
            | UpstreamError::Classified { status, body, .. },
        ) if (400..500).contains(&status) => Err(GatewayError::new(
            ErrorKind::Upstream { status, body },
            format!("The upstream rejected the request (status {status})."),
        )),
        Err(e) => Err(GatewayError::new(
            ErrorKind::BadGateway,
            format!("{}: {e}", handle.name),
        )),
    }
}
