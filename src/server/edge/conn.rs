//! What the edge knows of a client connection: its peer, how many of its
//! requests are in flight, since when it has had none, and the work its
//! finished requests left for after their answers are written.
//!
//! Place in the pipeline: `accept` makes one [`ConnActivity`] per
//! connection and adds a [`ConnInfo`] to each of its requests; `account`
//! marks a request in flight ([`ConnGuard`]) until its response body ends,
//! which also notes when the connection went quiet; `accept`'s one quiet
//! timer reads that, and whether any request came at all, when it fires (a
//! request never wakes it or re-arms it). [`AfterWrite`] holds work a
//! finished request leaves to be done once the connection has written its
//! answer (its access line, `access_line`); `accept` runs it after each
//! poll of the connection, and whatever is left runs when the activity is
//! dropped. Must not decide anything about requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

/// Counts requests in flight on one client connection (for its idle
/// timeout), when the last one ended, and whether one has come at all (its
/// first-request timeout).
#[derive(Debug)]
pub(crate) struct ConnActivity {
    pub in_flight: AtomicUsize,
    pub requested: AtomicBool,
    /// Whether its requests come over HTTP/2 (the header-read timeout is
    /// HTTP/1's).
    pub h2: AtomicBool,
    /// When the connection was accepted.
    pub opened: Instant,
    /// When its last request in flight ended, in nanoseconds after
    /// `opened` (0 until one has).
    quiet_since: AtomicU64,
    /// What finished requests left for after their answers are written.
    pub after_write: AfterWrite,
}

impl ConnActivity {
    pub(crate) fn new() -> Self {
        ConnActivity {
            in_flight: AtomicUsize::new(0),
            requested: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            opened: Instant::now(),
            quiet_since: AtomicU64::new(0),
            after_write: AfterWrite::default(),
        }
    }

    /// Since when no request has been in flight; `None` while one is.
    pub(crate) fn quiet_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let nanos = self.quiet_since.load(Ordering::SeqCst);
        Some(self.opened + std::time::Duration::from_nanos(nanos))
    }
}

/// What `accept` knows about a request's connection; a request extension.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub activity: Arc<ConnActivity>,
}

/// Work left by a finished request, done after its answer is written (a
/// trait, so that this file need not name the access line, whose file
/// reads the request context, which reads this one). It must not hold the
/// connection's activity (a cycle), nor leave more work here (it runs
/// under the queue's lock).
pub(super) trait AfterWriteWork: Send {
    fn run(self: Box<Self>);
}

/// Finished requests' work, in the order they finished.
#[derive(Default)]
pub(crate) struct AfterWrite {
    work: Mutex<Vec<Box<dyn AfterWriteWork>>>,
}

impl std::fmt::Debug for AfterWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfterWrite").finish_non_exhaustive()
    }
}

impl AfterWrite {
    pub(super) fn push(&self, work: Box<dyn AfterWriteWork>) {
        self.lock().push(work);
    }

    /// Does all the work waiting, oldest first.
    pub(crate) fn run(&self) {
        let mut work = self.lock();
        for w in work.drain(..) {
            w.run();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Box<dyn AfterWriteWork>>> {
        self.work.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for AfterWrite {
    fn drop(&mut self) {
        self.run();
    }
}

/// One request in flight on its connection, until dropped.
#[derive(Debug)]
pub(super) struct ConnGuard(Arc<ConnActivity>);

impl ConnGuard {
    pub(super) fn enter(a: &Arc<ConnActivity>) -> Self {
        a.requested.store(true, Ordering::SeqCst);
        a.in_flight.fetch_add(1, Ordering::SeqCst);
        ConnGuard(Arc::clone(a))
    }

    /// The connection's activity.
    pub(super) fn activity(&self) -> &Arc<ConnActivity> {
        &self.0
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Read with `in_flight`: a request that came in meanwhile
            // keeps the connection busy whatever this says.
            let nanos = u64::try_from(a.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
            a.quiet_since.store(nanos, Ordering::SeqCst);
        }
    }
}
