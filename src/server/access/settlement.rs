//! Settlement: what a request reserved at admission, turned into what it
//! really spent once its answer has ended.
//!
//! Place in the pipeline: `admission` makes a [`Settlement`] when a request
//! is admitted (the TPM buckets holding its estimate, its key's budget
//! counters holding its estimated tokens and dollars, its route's providers
//! with TPM limits) and puts it in the request context; `account` hands it
//! the answer's usage and cost when the response body ends, and it charges
//! them in one store call on its own task (the response never waits for
//! the store): each reservation becomes the real usage (the difference is
//! added: more when the answer spent more than its estimate, a refund when
//! less), and providers' TPM buckets are charged with what each served. A
//! settlement that is dropped unsettled (the request was cancelled before
//! its answer) gives every reservation back. Must not refuse anything: that
//! was admission's call.

use std::sync::Arc;
use std::time::Duration;

use crate::api::usage::Usage;
use crate::metrics::Metrics;
use crate::state::{Add, Adjust, Store};

/// One bucket a request takes from.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    pub(super) key: String,
    pub(super) capacity: u64,
    pub(super) amount: u64,
    pub(super) scope: &'static str,
}

/// One budget counter a request is checked against.
#[derive(Debug, Clone)]
pub(super) struct Counter {
    pub(super) key: String,
    pub(super) limit: u64,
    pub(super) unit: &'static str,
    pub(super) ttl: Duration,
    /// What admission reserved on it (tokens, or micro-dollars).
    pub(super) reserved: u64,
}

/// What a request reserved, to be settled with its real usage; given back
/// when dropped unsettled.
#[derive(Debug)]
pub(crate) struct Settlement(Option<Reserved>);

impl Settlement {
    pub(super) fn new(reserved: Reserved) -> Self {
        Settlement(Some(reserved))
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.settle(None, None, Vec::new());
        }
    }
}

/// The reservations of one request.
#[derive(Debug)]
pub(super) struct Reserved {
    pub(super) store: Store,
    pub(super) metrics: Arc<Metrics>,
    pub(super) alias: Arc<str>,
    /// TPM buckets holding the reserved estimate.
    pub(super) tpm: Vec<Bucket>,
    /// Budget counters: `[tokens, usd]` when configured.
    pub(super) tokens: Option<Counter>,
    pub(super) usd: Option<Counter>,
    /// The route's providers with TPM limits, and those limits: charged
    /// with what each served (routing only held the estimate meanwhile).
    pub(super) provider_tpm: Arc<[(Arc<str>, u64)]>,
}

/// Micro-dollars per dollar: budgets in dollars count integers.
pub(super) const MICROS: f64 = 1_000_000.0;

/// The signed difference `real - reserved`.
fn delta(real: u64, reserved: u64) -> i64 {
    (i128::from(real) - i128::from(reserved)).clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

impl Settlement {
    /// Charges `usage` (none: the request spent nothing upstream, say a
    /// cache hit or a failure) and `cost_usd` on the request's own task, so
    /// the end of the response never waits for the store.
    pub(crate) fn settle(
        mut self,
        usage: Option<Usage>,
        cost_usd: Option<f64>,
        by_provider: Vec<(Arc<str>, u64)>,
    ) {
        if let Some(r) = self.0.take() {
            r.settle(usage, cost_usd, by_provider);
        }
    }
}

impl Reserved {
    fn settle(
        self,
        usage: Option<Usage>,
        cost_usd: Option<f64>,
        by_provider: Vec<(Arc<str>, u64)>,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let used = usage.map_or(0, |u| u.total());
            let provider_keys: Vec<(String, u64, u64)> = by_provider
                .iter()
                .filter(|(_, n)| *n > 0)
                .filter_map(|(p, n)| {
                    let (_, capacity) = self.provider_tpm.iter().find(|(q, _)| q == p)?;
                    Some((crate::routing::tpm::bucket_key(p), *capacity, *n))
                })
                .collect();
            let mut adjusts: Vec<Adjust<'_>> = self
                .tpm
                .iter()
                .filter(|b| b.amount != used)
                .map(|b| Adjust {
                    key: &b.key,
                    capacity: b.capacity,
                    per_minute: b.capacity,
                    // Each bucket reserved its own (clamped) amount.
                    delta: used as i64 - b.amount as i64,
                })
                .collect();
            adjusts.extend(provider_keys.iter().map(|(key, capacity, n)| Adjust {
                key,
                capacity: *capacity,
                per_minute: *capacity,
                delta: *n as i64,
            }));
            let mut adds: Vec<Add<'_>> = Vec::new();
            let mut counted: Vec<&Counter> = Vec::new();
            if let Some(c) = &self.tokens {
                adds.push(Add {
                    key: &c.key,
                    amount: delta(used, c.reserved),
                    ttl: c.ttl,
                });
                counted.push(c);
            }
            if let Some(c) = &self.usd {
                let micros = cost_usd.map_or(0, |d| (d * MICROS).round() as u64);
                adds.push(Add {
                    key: &c.key,
                    amount: delta(micros, c.reserved),
                    ttl: c.ttl,
                });
                counted.push(c);
            }
            if adjusts.is_empty() && adds.is_empty() {
                return;
            }
            match self.store.settle(&adjusts, &adds).await {
                Ok(totals) => {
                    for (c, total) in counted.iter().zip(totals) {
                        let left = c.limit.saturating_sub(total) as f64;
                        let left = if c.unit == "usd" { left / MICROS } else { left };
                        self.metrics
                            .budget_remaining
                            .with_label_values(&[&self.alias, c.unit])
                            .set(left);
                    }
                }
                Err(e) => {
                    tracing::warn!(key = %self.alias, error = %e, "usage could not be charged")
                }
            }
        });
    }
}
