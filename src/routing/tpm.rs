//! Provider TPM: an attempt holds its token estimate in the provider's
//! bucket while it is made; the real usage is charged when the response
//! ends (by the request's settlement in `server`).
//!
//! Place in the pipeline: `run_targets` calls [`hold`] before each attempt
//! on a provider with `tpm:` and releases the hold when the attempt returns
//! (answer or error). A provider whose bucket cannot hold the estimate is
//! skipped like one whose rate limit is spent: the next target is tried.
//! Must not retry or wait for tokens.

use std::time::Duration;

use crate::metrics::Metrics;
use crate::providers::UpstreamError;
use crate::state::{Adjust, Admit, Store, Take};

use super::table::ProviderHandle;

/// The bucket of a provider's TPM limit.
pub fn bucket_key(provider: &str) -> String {
    format!("tpm:p:{provider}")
}

/// An estimate held in a provider's bucket until the attempt returns.
#[derive(Debug)]
pub(super) struct Held {
    store: Store,
    key: String,
    capacity: u64,
    amount: u64,
}

/// Holds `estimate` tokens of `handle`'s TPM bucket (if it has one), or
/// refuses the attempt as rate limited.
pub(super) async fn hold(
    store: &Store,
    handle: &ProviderHandle,
    estimate: u64,
    metrics: &Metrics,
) -> Result<Option<Held>, UpstreamError> {
    let Some(capacity) = handle.spec.tpm else {
        return Ok(None);
    };
    let key = bucket_key(&handle.spec.name);
    let amount = estimate.min(capacity);
    let take = Take {
        key: &key,
        capacity,
        per_minute: capacity,
        amount,
    };
    let refused = |wait: Duration| {
        metrics
            .rate_limited
            .with_label_values(&["provider_tpm"])
            .inc();
        UpstreamError::RateLimited(wait)
    };
    match store.admit(&[take], &[]).await {
        Ok(Admit::Granted) => Ok(Some(Held {
            store: store.clone(),
            key,
            capacity,
            amount,
        })),
        Ok(Admit::Refused { wait, .. }) => Err(refused(wait.unwrap_or(Duration::from_secs(60)))),
        // Under fail_closed the store refuses while it is down: skip the
        // provider as if its bucket were spent.
        Err(_) => Err(refused(Duration::from_secs(1))),
    }
}

impl Held {
    /// Gives the held estimate back, off the request path.
    pub(super) fn release(self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let adjust = Adjust {
                key: &self.key,
                capacity: self.capacity,
                per_minute: self.capacity,
                delta: -(self.amount as i64),
            };
            let _ = self.store.settle(&[adjust], &[]).await;
        });
    }
}
