//! What the edge knows of a client connection: its peer and how many of
//! its requests are in flight.
//!
//! Place in the pipeline: `accept` makes one [`ConnActivity`] per
//! connection and adds a [`ConnInfo`] to each of its requests; `account`
//! marks a request in flight ([`ConnGuard`]) until its response body ends,
//! and `accept`'s idle timer waits for the count to reach zero; its
//! first-request timer reads whether any request came at all. Must not
//! decide anything about requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts requests in flight on one client connection (for its idle
/// timeout), and whether one has come at all (its first-request timeout).
#[derive(Debug, Default)]
pub(crate) struct ConnActivity {
    pub in_flight: AtomicUsize,
    pub changed: tokio::sync::Notify,
    pub requested: AtomicBool,
}

/// What `accept` knows about a request's connection; a request extension.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub activity: Arc<ConnActivity>,
}

/// One request in flight on its connection, until dropped.
#[derive(Debug)]
pub(super) struct ConnGuard(Arc<ConnActivity>);

impl ConnGuard {
    pub(super) fn enter(a: &Arc<ConnActivity>) -> Self {
        a.requested.store(true, Ordering::SeqCst);
        a.in_flight.fetch_add(1, Ordering::SeqCst);
        a.changed.notify_waiters();
        ConnGuard(Arc::clone(a))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}
