//! The request permit: one unit of the gateway's concurrency limit, shared
//! by everything that works for one request.
//!
//! Place in the pipeline: `stack::dispatch` takes a permit of
//! `server.max_concurrent_requests` for every request outside the health
//! bypass and puts it in the request context; the handler, a single-flight
//! leader's task and a stream body each hold a clone, so the permit is
//! released (and `switchyard_requests_in_flight` decremented, and the
//! busy poller told, `busy_poll`) when the last of them ends, whichever way
//! it ends. Must not wait for a permit: the
//! caller sheds load when none is free.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::busy_poll::BusyPoll;

/// Holds one unit of the gateway's concurrency limit and counts in
/// `switchyard_requests_in_flight` while any holder lives.
#[derive(Debug)]
pub(crate) struct RequestPermit {
    _permit: OwnedSemaphorePermit,
    poll: Arc<BusyPoll>,
}

impl RequestPermit {
    pub(super) fn new(permit: OwnedSemaphorePermit, poll: &Arc<BusyPoll>) -> Arc<Self> {
        poll.started();
        Arc::new(RequestPermit {
            _permit: permit,
            poll: Arc::clone(poll),
        })
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.poll.ended();
    }
}
