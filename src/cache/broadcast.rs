//! Stream single-flight: identical concurrent stream requests share one
//! upstream stream, a broadcast with a replay buffer.
//!
//! Place in the pipeline: `server::chat_stream` calls
//! [`StreamFlights::join`] on a cache miss. The first caller gets a
//! [`Publisher`] and runs the upstream stream on its own task, so a leader
//! whose client disconnects does not end it for the others; every caller
//! (leader included) reads through its own [`Subscriber`] from the start of
//! the buffer at its own pace. While the stream stays within the bound
//! (`cache.max_entry_bytes`) everything is kept (for late joiners and for
//! the cache); past it the flight is closed to new joiners, the pieces every
//! reader has passed are dropped, and the publisher waits for the slowest
//! reader when the rest reaches the bound, so memory stays bounded. When the
//! last subscriber goes away before the end, the upstream task is aborted.
//! Must not store anything in the cache or know the wire format.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use super::CacheKey;
use crate::api::GatewayError;

/// One run of whole events, and the same run without usage when it differs.
#[derive(Debug, Clone)]
pub struct Piece {
    pub bytes: Bytes,
    pub without_usage: Option<Bytes>,
}

/// Who answered, once routing has found a target.
#[derive(Debug, Clone)]
pub struct Started {
    pub provider: Arc<str>,
    /// The target's model, as the provider was asked for it.
    pub model: Arc<str>,
    pub attempts: u32,
}

/// How a started stream ended.
#[derive(Debug, Clone)]
pub enum End {
    Done,
    /// Failed mid-way: the SSE error event every reader gets last.
    Failed(Bytes),
}

#[derive(Debug, Default)]
struct State {
    started: Option<Result<Started, GatewayError>>,
    pieces: VecDeque<Piece>,
    /// Index of `pieces[0]` in the whole stream.
    base: usize,
    buffered: usize,
    total: usize,
    overflow: bool,
    end: Option<End>,
    /// Subscriber id -> index of the next piece it reads.
    readers: HashMap<u64, usize>,
    next_id: u64,
    abort: Option<AbortHandle>,
}

impl State {
    /// Drops the pieces every reader has passed (only once past the bound).
    fn trim(&mut self) {
        if !self.overflow {
            return;
        }
        let low = self.readers.values().copied().min().unwrap_or(usize::MAX);
        while self.base < low {
            let Some(p) = self.pieces.pop_front() else {
                break;
            };
            self.base += 1;
            self.buffered -= p.bytes.len();
        }
    }
}

#[derive(Debug)]
struct Flight {
    state: Mutex<State>,
    changed: watch::Sender<()>,
    space: Notify,
    bound: usize,
}

impl Flight {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type Map = Arc<Mutex<HashMap<CacheKey, Arc<Flight>>>>;

fn lock_map(map: &Map) -> MutexGuard<'_, HashMap<CacheKey, Arc<Flight>>> {
    map.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes `flight` from `map` if it is still the one listed under `key`.
fn unlist(map: &Map, key: &CacheKey, flight: &Arc<Flight>) {
    let mut m = lock_map(map);
    if m.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
        m.remove(key);
    }
}

/// The streams in flight, by cache key.
#[derive(Debug, Default)]
pub struct StreamFlights {
    map: Map,
}

impl StreamFlights {
    /// Joins the stream in flight for `key`, or starts one (then the
    /// [`Publisher`] is returned: the caller must run the upstream stream
    /// and call [`Subscriber::set_abort`] with its task).
    pub fn join(&self, key: CacheKey, bound: usize) -> (Subscriber, Option<Publisher>) {
        let mut m = lock_map(&self.map);
        let (flight, publisher) = match m.get(&key) {
            Some(f) => (Arc::clone(f), None),
            None => {
                let f = Arc::new(Flight {
                    state: Mutex::default(),
                    changed: watch::channel(()).0,
                    space: Notify::new(),
                    bound,
                });
                m.insert(key, Arc::clone(&f));
                let p = Publisher {
                    flight: Arc::clone(&f),
                    map: Arc::clone(&self.map),
                    key,
                };
                (f, Some(p))
            }
        };
        let id = {
            let mut s = flight.lock();
            let id = s.next_id;
            s.next_id += 1;
            let start = s.base;
            s.readers.insert(id, start);
            id
        };
        let rx = flight.changed.subscribe();
        let sub = Subscriber {
            flight,
            map: Arc::clone(&self.map),
            key,
            id,
            rx,
        };
        (sub, publisher)
    }

    /// Streams in flight (for tests and diagnostics).
    pub fn len(&self) -> usize {
        lock_map(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The writing side of a flight, owned by the task running the upstream stream.
#[derive(Debug)]
pub struct Publisher {
    flight: Arc<Flight>,
    map: Map,
    key: CacheKey,
}

impl Publisher {
    /// Routing is over: readers can answer (or fail with `result`'s error).
    pub fn start(&self, result: Result<Started, GatewayError>) {
        let failed = result.is_err();
        self.flight.lock().started = Some(result);
        self.flight.changed.send_replace(());
        if failed {
            unlist(&self.map, &self.key, &self.flight);
        }
    }

    /// Appends `piece`; past the bound, first waits until the slowest
    /// reader leaves room.
    pub async fn push(&self, piece: Piece) {
        let f = &self.flight;
        let mut overflowed = false;
        loop {
            let full = {
                let s = f.lock();
                s.overflow && s.buffered >= f.bound
            };
            if !full {
                break;
            }
            f.space.notified().await;
        }
        {
            // Only this task appends, so the room found above is still there.
            let mut s = f.lock();
            s.total += piece.bytes.len();
            s.buffered += piece.bytes.len();
            s.pieces.push_back(piece);
            if !s.overflow && s.total > f.bound {
                s.overflow = true;
                overflowed = true;
                s.trim();
            }
        }
        f.changed.send_replace(());
        if overflowed {
            unlist(&self.map, &self.key, &self.flight);
        }
    }

    /// The whole stream, when it stayed within the bound.
    pub fn whole(&self) -> Option<Bytes> {
        let s = self.flight.lock();
        if s.overflow {
            return None;
        }
        let mut out = BytesMut::with_capacity(s.total);
        for p in &s.pieces {
            out.extend_from_slice(&p.bytes);
        }
        Some(out.freeze())
    }

    /// The stream is over: readers finish with what they have, then `end`.
    pub fn finish(self, end: End) {
        self.flight.lock().end = Some(end);
        self.flight.changed.send_replace(());
        unlist(&self.map, &self.key, &self.flight);
    }
}

/// One reader of a flight; dropping the last one before the end aborts it.
#[derive(Debug)]
pub struct Subscriber {
    flight: Arc<Flight>,
    map: Map,
    key: CacheKey,
    id: u64,
    rx: watch::Receiver<()>,
}

impl Subscriber {
    /// Registers the task running the upstream stream (the leader does).
    pub fn set_abort(&self, handle: AbortHandle) {
        self.flight.lock().abort = Some(handle);
    }

    /// Waits until routing is over: who answers, or the error for all.
    pub async fn started(&mut self) -> Result<Started, GatewayError> {
        loop {
            self.rx.borrow_and_update();
            if let Some(r) = &self.flight.lock().started {
                return r.clone();
            }
            // The sender lives in the flight this subscriber holds.
            let _ = self.rx.changed().await;
        }
    }

    /// The next piece (its usage-free form unless `with_usage`), or the end:
    /// `None` after `[DONE]`, `Some(Err(event))` for a failed stream.
    pub async fn next(&mut self, with_usage: bool) -> Option<Result<Bytes, Bytes>> {
        loop {
            self.rx.borrow_and_update();
            {
                let f = &self.flight;
                let mut s = f.lock();
                let at = s.readers.get(&self.id).copied().unwrap_or(s.base);
                if let Some(p) = at.checked_sub(s.base).and_then(|i| s.pieces.get(i)) {
                    let bytes = match (&p.without_usage, with_usage) {
                        (Some(b), false) => b.clone(),
                        _ => p.bytes.clone(),
                    };
                    s.readers.insert(self.id, at + 1);
                    if s.overflow {
                        s.trim();
                        f.space.notify_one();
                    }
                    if bytes.is_empty() {
                        continue;
                    }
                    return Some(Ok(bytes));
                }
                match &s.end {
                    Some(End::Done) => return None,
                    Some(End::Failed(e)) => return Some(Err(e.clone())),
                    None => {}
                }
            }
            let _ = self.rx.changed().await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut m = lock_map(&self.map);
        let mut s = self.flight.lock();
        s.readers.remove(&self.id);
        if s.overflow {
            s.trim();
            self.flight.space.notify_one();
        }
        if s.readers.is_empty() && s.end.is_none() {
            if let Some(a) = &s.abort {
                a.abort();
            }
            if m.get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn piece(s: &'static str) -> Piece {
        Piece {
            bytes: Bytes::from_static(s.as_bytes()),
            without_usage: None,
        }
    }

    #[tokio::test]
    async fn past_the_bound_the_publisher_waits_for_the_slowest_reader() {
        let flights = StreamFlights::default();
        let key = CacheKey::embedding("r", "{}", "k");
        let (mut fast, publisher) = flights.join(key, 8);
        let publisher = publisher.unwrap();
        let (mut slow, none) = flights.join(key, 8);
        assert!(none.is_none(), "the second caller follows");
        for p in ["aaaa", "bbbb", "cccc"] {
            publisher.push(piece(p)).await;
        }
        assert!(flights.is_empty(), "past the bound nobody new joins");
        assert!(publisher.whole().is_none(), "and it is not kept whole");
        for want in ["aaaa", "bbbb", "cccc"] {
            assert_eq!(
                fast.next(true).await,
                Some(Ok(Bytes::from_static(want.as_bytes())))
            );
        }
        // 12 bytes unread by `slow` (>= 8): the next push waits for it.
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), publisher.push(piece("dddd")));
        assert!(blocked.await.is_err());
        assert_eq!(slow.next(true).await, Some(Ok(Bytes::from_static(b"aaaa"))));
        assert_eq!(slow.next(true).await, Some(Ok(Bytes::from_static(b"bbbb"))));
        publisher.push(piece("dddd")).await;
        publisher.finish(End::Done);
        for want in ["cccc", "dddd"] {
            assert_eq!(
                slow.next(true).await,
                Some(Ok(Bytes::from_static(want.as_bytes())))
            );
        }
        assert_eq!(slow.next(true).await, None);
        assert_eq!(fast.next(true).await, Some(Ok(Bytes::from_static(b"dddd"))));
        assert_eq!(fast.next(true).await, None);
    }
}
