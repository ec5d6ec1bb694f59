//! Provider TPM: an attempt holds its token estimate in the provider's
//! bucket while it is made; the real usage is charged when the response
//! ends (by the request's settlement in `server`).
//!
//! Place in the pipeline: [`TpmHoldLayer`] sits in the attempt stack of a
//! provider with `tpm:` (see `attempt`), after its rate limit. A provider
//! whose bucket cannot hold the estimate refuses the attempt as rate
//! limited, so the next target is tried. The hold is a guard
//! ([`Held`]) carried by the attempt's future: it gives the estimate back
//! when the attempt returns, or when its future is dropped (a route deadline
//! or a client gone mid-attempt), so a cancelled attempt never keeps tokens
//! taken. Must not retry or wait for tokens.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use super::call::Attempt;
use crate::boxed::in_place;
use crate::metrics::Metrics;
use crate::providers::UpstreamError;
use crate::state::{Adjust, Admit, Store, Take};

/// The bucket of a provider's TPM limit.
pub fn bucket_key(provider: &str) -> String {
    format!("tpm:p:{provider}")
}

/// Holds each attempt's estimate in one provider's TPM bucket.
#[derive(Debug, Clone)]
pub(super) struct TpmHoldLayer {
    bucket: Arc<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    store: Store,
    key: String,
    capacity: u64,
    metrics: Arc<Metrics>,
}

impl TpmHoldLayer {
    pub(super) fn new(
        store: &Store,
        provider: &str,
        capacity: u64,
        metrics: &Arc<Metrics>,
    ) -> Self {
        TpmHoldLayer {
            bucket: Arc::new(Bucket {
                store: store.clone(),
                key: bucket_key(provider),
                capacity,
                metrics: Arc::clone(metrics),
            }),
        }
    }
}

impl<S> Layer<S> for TpmHoldLayer {
    type Service = TpmHold<S>;
    fn layer(&self, inner: S) -> TpmHold<S> {
        TpmHold {
            inner,
            bucket: Arc::clone(&self.bucket),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct TpmHold<S> {
    inner: S,
    bucket: Arc<Bucket>,
}

impl<S> Service<Attempt> for TpmHold<S>
where
    S: Service<Attempt, Error = UpstreamError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = UpstreamError;
    type Future = BoxFuture<'static, Result<S::Response, UpstreamError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        // The inner service was made ready for this call: take it, leave a
        // fresh clone for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let bucket = Arc::clone(&self.bucket);
        in_place(move || async move {
            let _held = Held::take(bucket, attempt.estimate).await?;
            inner.call(attempt).await
        })
    }
}

/// An estimate held in a provider's bucket; given back on drop.
#[derive(Debug)]
pub(super) struct Held {
    bucket: Arc<Bucket>,
    amount: u64,
}

impl Held {
    /// Holds `estimate` tokens (at most the bucket's size), or refuses the
    /// attempt as rate limited.
    async fn take(bucket: Arc<Bucket>, estimate: u64) -> Result<Held, UpstreamError> {
        let amount = estimate.min(bucket.capacity);
        let take = Take {
            key: &bucket.key,
            capacity: bucket.capacity,
            per_minute: bucket.capacity,
            amount,
        };
        let refused = |wait: Duration| {
            bucket
                .metrics
                .rate_limited
                .with_label_values(&["provider_tpm"])
                .inc();
            UpstreamError::RateLimited(wait)
        };
        match bucket.store.admit(&[take], &[]).await {
            Ok(Admit::Granted) => Ok(Held {
                bucket: Arc::clone(&bucket),
                amount,
            }),
            Ok(Admit::Refused { wait, .. }) => {
                Err(refused(wait.unwrap_or(Duration::from_secs(60))))
            }
            // Under fail_closed the store refuses while it is down: skip the
            // provider as if its bucket were spent.
            Err(_) => Err(refused(Duration::from_secs(1))),
        }
    }
}

impl Drop for Held {
    /// Gives the held estimate back, off the request path.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (bucket, amount) = (Arc::clone(&self.bucket), self.amount);
        runtime.spawn(async move {
            let adjust = Adjust {
                key: &bucket.key,
                capacity: bucket.capacity,
                per_minute: bucket.capacity,
                delta: -(amount as i64),
            };
            let _ = bucket.store.settle(&[adjust], &[]).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Need, Provider};
    use crate::routing::call::{AnyReply, Call};
    use tower::ServiceExt;

    /// A call whose attempts the test's inner service answers.
    struct Hold;

    impl Call for Hold {
        type Reply = ();
        fn need(&self) -> Need {
            Need::Chat { stream: false }
        }
        fn estimated_tokens(&self) -> u64 {
            800
        }
        async fn attempt(
            self: Arc<Self>,
            _: Arc<dyn Provider>,
            _: Arc<str>,
        ) -> Result<(), UpstreamError> {
            Ok(())
        }
    }

    const CAPACITY: u64 = 1000;

    /// Whether the whole bucket is free (taking it all, then giving it back).
    async fn bucket_is_full(store: &Store) -> bool {
        let key = bucket_key("p");
        let all = Take {
            key: &key,
            capacity: CAPACITY,
            per_minute: CAPACITY,
            amount: CAPACITY,
        };
        let full = matches!(store.admit(&[all], &[]).await, Ok(Admit::Granted));
        if full {
            let back = Adjust {
                key: &key,
                capacity: CAPACITY,
                per_minute: CAPACITY,
                delta: -(CAPACITY as i64),
            };
            store.settle(&[back], &[]).await.unwrap();
        }
        full
    }

    /// Lets the spawned release run.
    async fn settle_tasks() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_firing_mid_attempt_gives_the_hold_back() {
        let metrics = Arc::new(Metrics::new());
        let store = Store::memory(Arc::clone(&metrics));
        let layer = TpmHoldLayer::new(&store, "p", CAPACITY, &metrics);
        // An upstream that never answers: only the deadline ends the attempt.
        let hang = tower::service_fn(|_: Attempt| {
            std::future::pending::<Result<AnyReply, UpstreamError>>()
        });
        let svc = layer.layer(hang);
        let attempt = Attempt::new(&Arc::new(Hold), "m", 800);
        let deadline = std::time::Duration::from_secs(1);
        let cut = tokio::time::timeout(deadline, svc.clone().oneshot(attempt.clone())).await;
        assert!(cut.is_err(), "the attempt was cut by the deadline");
        settle_tasks().await;
        assert!(
            bucket_is_full(&store).await,
            "the 800 held tokens came back"
        );

        // While an attempt runs, its estimate is held: a second one that
        // does not fit is refused as rate limited.
        let running = tokio::spawn(svc.clone().oneshot(attempt.clone()));
        settle_tasks().await;
        let second = svc.clone().oneshot(attempt).await;
        assert!(
            matches!(second, Err(UpstreamError::RateLimited(_))),
            "{second:?}"
        );
        assert_eq!(
            metrics
                .rate_limited
                .with_label_values(&["provider_tpm"])
                .get(),
            1
        );
        running.abort();
        let _ = running.await;
        settle_tasks().await;
        assert!(
            bucket_is_full(&store).await,
            "an aborted attempt gives its hold back"
        );
    }
}
