//! Single-flight: identical concurrent requests share one upstream call.
//!
//! Place in the pipeline: `server` wraps cache misses in [`SingleFlight::run`]
//! keyed like the cache. The first caller (leader) starts the work on its own
//! task, so a leader whose client disconnects does not cancel it for the
//! others; later callers with the same key wait for the same result. The key
//! is forgotten when the work finishes. Must not store results: the cache
//! does that.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::api::{ErrorKind, GatewayError};

type Flight<T> = Shared<BoxFuture<'static, Result<T, GatewayError>>>;

pub struct SingleFlight<T> {
    inflight: Arc<Mutex<HashMap<String, Flight<T>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            inflight: Arc::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// Runs `work` unless an identical key is in flight; returns the result
    /// and whether this caller was the leader.
    pub async fn run<F>(&self, key: String, work: F) -> (Result<T, GatewayError>, bool)
    where
        F: Future<Output = Result<T, GatewayError>> + Send + 'static,
    {
        let (flight, leader) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(f) => (f.clone(), false),
                None => {
                    let inflight = Arc::clone(&self.inflight);
                    let k = key.clone();
                    let task = tokio::spawn(async move {
                        let result = work.await;
                        inflight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&k);
                        result
                    });
                    let flight = async move {
                        task.await.unwrap_or_else(|_| {
                            Err(GatewayError::new(
                                ErrorKind::Internal,
                                "The upstream call failed unexpectedly.",
                            ))
                        })
                    }
                    .boxed()
                    .shared();
                    map.insert(key, flight.clone());
                    (flight, true)
                }
            }
        };
        (flight.await, leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let sf = Arc::new(SingleFlight::<u32>::default());
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
}
