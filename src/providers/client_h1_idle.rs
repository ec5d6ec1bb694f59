//! One plain HTTP/1 upstream connection ([`Lease`]), and the idle ones of a
//! pool ([`IdleSet`]) with the one task that watches them.
//!
//! Place in the pipeline: under [`super::client_h1`], which takes a lease
//! for a request, drives it from the request's task and puts it back when
//! the answer's body has been read. An idle connection has no request to
//! drive it, so the set's watcher is polled by the connections' sockets
//! instead: one the upstream closes (its keep-alive ran out) is dropped at
//! once, its slot and file given back, and one idle longer than the idle
//! timeout is closed. Taking one checks it once more (a close that has not
//! been seen yet). The watcher holds the set weakly and ends with it. Must
//! not send a request.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::uri::Authority;
use tokio::time::{Instant, Sleep, sleep_until};

use super::client_h1_conn::{Conn, Io};

/// One connection, out of the pool for one request or idle in it.
pub(super) struct Lease {
    pub(super) conn: Conn,
    authority: Authority,
}

impl Lease {
    /// Boxed: a connection's state moves with the lease.
    pub(super) fn new(io: Io, authority: Authority) -> Box<Self> {
        Box::new(Lease {
            conn: Conn::new(io),
            authority,
        })
    }

    /// Polls the idle connection (its socket then wakes `cx`); `false`
    /// once the upstream closed it, and no request may go out on it.
    fn usable(&mut self, cx: &mut Context<'_>) -> bool {
        self.conn.poll_open(cx)
    }
}

struct Idle {
    lease: Box<Lease>,
    since: Instant,
}

/// The idle connections of one pool, the most recently used last.
pub(super) struct IdleSet {
    list: Mutex<VecDeque<Idle>>,
    timeout: Duration,
    /// The watcher's waker, once it has run; idle connections are polled
    /// with it, so their sockets wake it.
    watcher: Mutex<Option<Waker>>,
    started: AtomicBool,
}

impl IdleSet {
    pub(super) fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(IdleSet {
            list: Mutex::new(VecDeque::new()),
            timeout,
            watcher: Mutex::new(None),
            started: AtomicBool::new(false),
        })
    }

    fn list(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.list().len()
    }

    /// The most recently used idle connection to `authority` that is still
    /// open; closed and expired ones met on the way are dropped.
    pub(super) fn take(&self, authority: &Authority) -> Option<Box<Lease>> {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let found = {
                let mut list = self.list();
                // The same text first: `Authority`'s own `==` ignores case byte
                // by byte.
                let at = list.iter().rposition(|i| {
                    let a = &i.lease.authority;
                    a.as_str() == authority.as_str() || a == authority
                })?;
                list.remove(at)?
            };
            let mut lease = found.lease;
            if found.since.elapsed() <= self.timeout && lease.usable(&mut cx) {
                return Some(lease);
            }
        }
    }

    /// `lease` back, idle, watched from now on (`cx`: the caller's, until
    /// the watcher has started).
    pub(super) fn put(self: &Arc<Self>, mut lease: Box<Lease>, cx: &mut Context<'_>) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let open = match &watcher {
            Some(w) => lease.usable(&mut Context::from_waker(w)),
            None => lease.usable(cx),
        };
        if !open {
            return;
        }
        self.list().push_back(Idle {
            lease,
            since: Instant::now(),
        });
        if watcher.is_none() && !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(Watcher {
                set: Arc::downgrade(self),
                sleep: Box::pin(sleep_until(Instant::now() + self.timeout)),
            });
        }
    }

    /// Polls every idle connection with `cx`, dropping the closed and the
    /// expired; when the oldest left expires.
    fn sweep(&self, cx: &mut Context<'_>) -> Option<Instant> {
        let now = Instant::now();
        let mut list = self.list();
        list.retain_mut(|i| now.duration_since(i.since) <= self.timeout && i.lease.usable(cx));
        list.front().map(|i| i.since + self.timeout)
    }
}

impl Drop for IdleSet {
    fn drop(&mut self) {
        // The watcher ends when it next runs.
        if let Some(w) = self.watcher.get_mut().ok().and_then(Option::take) {
            w.wake();
        }
    }
}

/// The task that watches a set's idle connections.
struct Watcher {
    set: Weak<IdleSet>,
    sleep: Pin<Box<Sleep>>,
}

impl Future for Watcher {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Some(set) = self.set.upgrade() else {
                return Poll::Ready(());
            };
            {
                let mut w = set.watcher.lock().unwrap_or_else(|p| p.into_inner());
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
            }
            let next = set
                .sweep(cx)
                .unwrap_or_else(|| Instant::now() + set.timeout);
            drop(set);
            self.sleep.as_mut().reset(next);
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}
