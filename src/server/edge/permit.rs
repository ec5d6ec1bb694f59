//! The request permit: one unit of the gateway's concurrency limit, shared
//! by everything that works for one request.
//!
//! Place in the pipeline: `stack::dispatch` takes a permit of
//! `server.max_concurrent_requests` for every request outside the health
//! bypass and puts it in the request context; the handler, a single-flight
//! leader's task and a stream body each hold a clone, so the permit is
//! released (and `switchyard_requests_in_flight` decremented) when the last
//! of them ends, whichever way it ends. Must not wait for a permit: the
//! caller sheds load when none is free.

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::OwnedSemaphorePermit;

use crate::metrics::Metrics;

/// Holds one unit of the gateway's concurrency limit and counts in
/// `switchyard_requests_in_flight` while any holder lives.
#[derive(Debug)]
pub(crate) struct RequestPermit {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl RequestPermit {
    pub(super) fn new(permit: OwnedSemaphorePermit, metrics: &Metrics) -> Arc<Self> {
        metrics.in_flight.inc();
        Arc::new(RequestPermit {
            _permit: permit,
            gauge: metrics.in_flight.clone(),
        })
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
