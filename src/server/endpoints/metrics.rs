//! `GET /metrics`: the Prometheus exposition of every `switchyard_*` metric.
//!
//! Place in the pipeline: called by the router, outside the concurrency
//! limit and not counted as in flight (a scrape does not see itself). The
//! cache gauges and each provider's open upstream connections are read
//! here, at scrape time. Must not change any metric but those gauges.

use http::{HeaderValue, Response, header};

use crate::api::GatewayError;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, full};

pub(crate) async fn handle(rc: &RequestCtx) -> Result<Response<Body>, GatewayError> {
    let m = &rc.state.metrics;
    let (bytes, entries) = rc.rt.cache.usage().await;
    m.cache_bytes.set(bytes as i64);
    m.cache_entries.set(entries as i64);
    for (name, handle) in &rc.rt.table.providers {
        if let Some(open) = handle.provider.open_connections() {
            let gauge = m.provider_connections.with_label_values(&[name]);
            gauge.set(open as i64);
        }
    }
    let mut r = Response::new(full(m.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}
