//! Single-flight: identical concurrent requests share one upstream call.
//!
//! Place in the pipeline: `server` wraps cache misses in [`SingleFlight::run`]
//! keyed like the cache. The first caller (leader) starts the work on its own
//! task, so a leader whose client disconnects does not cancel it for the
//! others; later callers with the same key wait for the same result. Every
//! caller counts as a waiter while it waits: when the last waiter goes away
//! before the work is done, the work is cancelled (nobody is left to use
//! it), so abandoned calls cannot pile up upstream. The key is forgotten
//! when the work finishes or is cancelled. Must not store results: the
//! cache does that.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::task::AbortHandle;

use crate::api::{ErrorKind, GatewayError};
use crate::telemetry::RequestScope;

type SharedResult<T> = Shared<BoxFuture<'static, Result<T, GatewayError>>>;

struct Flight<T> {
    id: u64,
    result: SharedResult<T>,
    waiters: usize,
    abort: AbortHandle,
}

type Map<K, T> = Arc<Mutex<HashMap<K, Flight<T>>>>;

pub struct SingleFlight<K, T> {
    inflight: Map<K, T>,
}

impl<K, T> Default for SingleFlight<K, T> {
    fn default() -> Self {
        SingleFlight {
            inflight: Arc::default(),
        }
    }
}

impl<K, T> std::fmt::Debug for SingleFlight<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inflight.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("SingleFlight")
            .field("in_flight", &n)
            .finish()
    }
}

/// One caller's claim on a flight; dropping the last one cancels the work.
struct Waiter<K: Eq + Hash, T> {
    inflight: Map<K, T>,
    key: K,
    id: u64,
}

impl<K: Eq + Hash, T> Drop for Waiter<K, T> {
    fn drop(&mut self) {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = map.get_mut(&self.key) else {
            return;
        };
        if f.id != self.id {
            return;
        }
        f.waiters -= 1;
        if f.waiters == 0 {
            f.abort.abort();
            map.remove(&self.key);
        }
    }
}

impl<K, T> SingleFlight<K, T>
where
    K: Eq + Hash + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Runs `work` unless an identical key is in flight; returns the result
    /// and whether this caller was the leader.
    pub async fn run<F>(&self, key: K, work: F) -> (Result<T, GatewayError>, bool)
    where
        F: Future<Output = Result<T, GatewayError>> + Send + 'static,
    {
        let (result, leader, waiter) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get_mut(&key) {
                Some(f) => {
                    f.waiters += 1;
                    let waiter = Waiter {
                        inflight: Arc::clone(&self.inflight),
                        key: key.clone(),
                        id: f.id,
                    };
                    (f.result.clone(), false, waiter)
                }
                None => {
                    let id = fastrand::u64(..);
                    let inflight = Arc::clone(&self.inflight);
                    let k = key.clone();
                    // The leader's span goes with the work, so its logs
                    // (retries, failover) carry the leader's request id.
                    let task = tokio::spawn(RequestScope::current().instrument(async move {
                        let result = work.await;
                        let mut map = inflight.lock().unwrap_or_else(|p| p.into_inner());
                        if map.get(&k).is_some_and(|f| f.id == id) {
                            map.remove(&k);
                        }
                        result
                    }));
                    let abort = task.abort_handle();
                    let result = async move {
                        task.await.unwrap_or_else(|_| {
                            Err(GatewayError::new(
                                ErrorKind::Internal,
                                "The upstream call failed unexpectedly.",
                            ))
                        })
                    }
                    .boxed()
                    .shared();
                    map.insert(
                        key.clone(),
                        Flight {
                            id,
                            result: result.clone(),
                            waiters: 1,
                            abort,
                        },
                    );
                    let waiter = Waiter {
                        inflight: Arc::clone(&self.inflight),
                        key,
                        id,
                    };
                    (result, true, waiter)
                }
            }
        };
        let out = result.await;
        drop(waiter);
        (out, leader)
    }

    /// Keys in flight (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let sf = Arc::new(SingleFlight::<String, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut handles = vec![];
        for _ in 0..8 {
            let (sf, runs) = (Arc::clone(&sf), Arc::clone(&runs));
            handles.push(tokio::spawn(async move {
                sf.run("k".into(), async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(7)
                })
                .await
            }));
        }
        let mut leaders = 0;
        for h in handles {
            let (v, leader) = h.await.unwrap();
            assert_eq!(v.unwrap(), 7);
            leaders += leader as usize;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        // Finished keys are forgotten: the next call runs again.
        let (v, leader) = sf.run("k".into(), async { Ok(8) }).await;
        assert_eq!((v.unwrap(), leader), (8, true));
    }

    #[tokio::test]
    async fn work_is_cancelled_when_every_waiter_is_gone() {
        let sf = Arc::new(SingleFlight::<String, u32>::default());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::clone(&finished);
        let sf2 = Arc::clone(&sf);
        let caller = tokio::spawn(async move {
            sf2.run("k".into(), async move {
                let _ = started_tx.send(());
                tokio::time::sleep(Duration::from_secs(3600)).await;
                done.store(true, Ordering::SeqCst);
                Ok(1)
            })
            .await
        });
        started_rx.await.unwrap();
        assert_eq!(sf.len(), 1);
        caller.abort();
        let _ = caller.await;
        assert!(sf.is_empty(), "the abandoned flight is forgotten");
        let (v, leader) = sf.run("k".into(), async { Ok(2) }).await;
        assert_eq!((v.unwrap(), leader), (2, true), "a new call starts afresh");
        assert!(!finished.load(Ordering::SeqCst));
    }
}
