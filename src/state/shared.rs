//! The Redis backend and its failure policy: what a request gets when Redis
//! does not answer.
//!
//! Place in the pipeline: one of the two backends behind `Store`. Every call
//! is one bounded round trip (`remote.rs`); on an error or timeout:
//! `fail_open` answers from an embedded memory store (limits then hold per
//! replica), `fail_closed` refuses admission (`StoreError::Unavailable`).
//! Every budget counter Redis reports (admissions, settlements, reads) is
//! copied into that memory store: the last known spend per key, so that
//! under `fail_open` a key whose budget was spent stays refused while
//! Redis is away, and the others spend on from where they were. What a
//! local admission charged meanwhile (a cap's reservation, a bucket's
//! take) is parked for Redis, and under both policies a settlement is
//! applied locally and parked (`pending.rs`), all replayed on the next
//! round trip that reaches Redis (a bucket's charges as far as it has not
//! refilled since). Errors are counted,
//! `switchyard_state_up` follows the last call, and warnings are logged at
//! most once a second. Must not block: the only waits are the bounded
//! round trips.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::connect::Connector;
use super::memory::Memory;
use super::pending::Pending;
use super::remote::Remote;
use super::types::{Add, Adjust, Admit, Cap, StoreError, Take, Unavailable};
use crate::config::OnStateError;
use crate::metrics::Metrics;
use crate::metrics::warn::WarnEvery;

#[derive(Debug)]
pub(crate) struct Shared {
    remote: Remote,
    on_error: OnStateError,
    local: Memory,
    pending: Mutex<Pending>,
    warnings: WarnEvery,
}

/// The operation, as the `op` label of the state metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Admit,
    Settle,
    Counters,
    CacheGet,
    CacheSet,
    ResponsesGet,
    ResponsesPut,
    ResponsesDelete,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Admit => "admit",
            Op::Settle => "settle",
            Op::Counters => "counters",
            Op::CacheGet => "cache_get",
            Op::CacheSet => "cache_set",
            Op::ResponsesGet => "responses_get",
            Op::ResponsesPut => "responses_put",
            Op::ResponsesDelete => "responses_delete",
        }
    }
}

/// What a local admission charged, as Redis would have: each bucket's take
/// as an adjust, each cap's reservation as an add.
fn local_charges<'a>(takes: &[Take<'a>], caps: &[Cap<'a>]) -> (Vec<Adjust<'a>>, Vec<Add<'a>>) {
    let taken = takes
        .iter()
        .filter(|t| t.amount > 0)
        .map(|t| Adjust {
            key: t.key,
            capacity: t.capacity,
            per_minute: t.per_minute,
            delta: i64::try_from(t.amount).unwrap_or(i64::MAX),
        })
        .collect();
    let reserved = caps
        .iter()
        .filter(|c| c.amount > 0)
        .map(|c| Add {
            key: c.key,
            amount: i64::try_from(c.amount).unwrap_or(i64::MAX),
            ttl: c.ttl,
        })
        .collect();
    (taken, reserved)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        connector: Connector,
        on_error: OnStateError,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Ok(Shared {
            remote: Remote::new(connector, prefix, timeout)?,
            on_error,
            local: Memory::default(),
            pending: Mutex::default(),
            warnings: WarnEvery::per_second(),
        })
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.remote.is_up()
    }

    /// Whether settlements are waiting to be replayed into Redis.
    pub(crate) fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    /// Times and counts one round trip's outcome.
    fn record<T>(
        &self,
        metrics: &Metrics,
        op: Op,
        start: Instant,
        result: Result<T, Unavailable>,
    ) -> Result<T, Unavailable> {
        // A call refused at once for want of a connection was no round trip.
        if !matches!(result, Err(Unavailable::NotConnected)) {
            metrics
                .state_duration
                .with_label_values(&[op.label()])
                .observe(start.elapsed().as_secs_f64());
        }
        match &result {
            Ok(_) => {
                if metrics.state_up.get() != 1 {
                    metrics.state_up.set(1);
                    tracing::info!("state store: Redis answers");
                }
            }
            Err(e) => {
                metrics.state_up.set(0);
                metrics.state_errors.with_label_values(&[op.label()]).inc();
                self.warn(op, e);
            }
        }
        result
    }

    fn warn(&self, op: Op, e: &Unavailable) {
        let Some(suppressed) = self.warnings.check() else {
            return;
        };
        let meanwhile = match self.on_error {
            OnStateError::FailOpen => "serving with per-replica limits",
            OnStateError::FailClosed => "refusing requests that need limits or budgets",
        };
        tracing::warn!(op = op.label(), error = %e, suppressed, "state store: Redis call failed; {meanwhile}");
    }

    fn warn_dropped(&self, dropped: usize) {
        if dropped == 0 {
            return;
        }
        if let Some(suppressed) = self.warnings.check() {
            tracing::warn!(
                dropped,
                suppressed,
                "state store: too many settlements waiting for Redis; some were dropped"
            );
        }
    }

    /// The answer, and whether it came from Redis (then parked settlements
    /// may be replayed).
    pub(crate) async fn admit(
        &self,
        metrics: &Metrics,
        takes: &[Take<'_>],
        caps: &[Cap<'_>],
    ) -> (Result<Admit, StoreError>, bool) {
        let start = Instant::now();
        let result = self.remote.admit(takes, caps).await;
        match self.record(metrics, Op::Admit, start, result) {
            Ok((admit, values)) => {
                let seen: Vec<(&str, u64, Duration)> = caps
                    .iter()
                    .zip(values)
                    .map(|(c, v)| (c.key, v, c.ttl))
                    .collect();
                self.local.observe(&seen);
                (Ok(admit), true)
            }
            Err(e) => match self.on_error {
                OnStateError::FailOpen => {
                    let admit = self.local.admit(takes, caps);
                    if admit == Admit::Granted {
                        // Taken and reserved here: Redis gets them later
                        // (a bucket's as far as it has not refilled since),
                        // so that the settlement's correction adds up.
                        let (taken, reserved) = local_charges(takes, caps);
                        let dropped = lock(&self.pending).park(&taken, &reserved, Instant::now());
                        self.warn_dropped(dropped);
                    }
                    (Ok(admit), false)
                }
                OnStateError::FailClosed => (Err(StoreError::Unavailable(e)), false),
            },
        }
    }

    /// Sends the parked settlements first, then these, in one round trip.
    /// On failure both are parked again and these are applied locally; the
    /// totals are then the local ones.
    pub(crate) async fn settle(
        &self,
        metrics: &Metrics,
        adjusts: &[Adjust<'_>],
        adds: &[Add<'_>],
    ) -> Vec<u64> {
        let parked = std::mem::take(&mut *lock(&self.pending));
        if parked.is_empty() && adjusts.is_empty() && adds.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let (mut all_adjusts, mut all_adds) = parked.as_batches(now);
        let replayed = all_adds.len();
        all_adjusts.extend_from_slice(adjusts);
        all_adds.extend_from_slice(adds);
        let start = Instant::now();
        let result = self.remote.settle(&all_adjusts, &all_adds).await;
        match self.record(metrics, Op::Settle, start, result) {
            Ok(mut totals) => {
                let seen: Vec<(&str, u64, Duration)> = all_adds
                    .iter()
                    .zip(&totals)
                    .map(|(a, &v)| (a.key, v, a.ttl))
                    .collect();
                self.local.observe(&seen);
                totals.split_off(replayed)
            }
            Err(_) => {
                drop((all_adjusts, all_adds));
                let dropped = {
                    let mut pending = lock(&self.pending);
                    pending.restore(parked, now) + pending.park(adjusts, adds, now)
                };
                self.warn_dropped(dropped);
                self.local.settle(adjusts, adds)
            }
        }
    }

    /// The values, and whether they came from Redis.
    pub(crate) async fn counters(
        &self,
        metrics: &Metrics,
        keys: &[&str],
    ) -> (Result<Vec<u64>, StoreError>, bool) {
        let start = Instant::now();
        let result = self.remote.counters(keys).await;
        match self.record(metrics, Op::Counters, start, result) {
            Ok(values) => {
                // Counters read here exist already: their expiry is kept.
                let seen: Vec<(&str, u64, Duration)> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, &v)| (*k, v, Duration::from_secs(3600)))
                    .collect();
                self.local.observe(&seen);
                (Ok(values), true)
            }
            Err(e) => match self.on_error {
                OnStateError::FailOpen => (Ok(self.local.counters(keys)), false),
                OnStateError::FailClosed => (Err(StoreError::Unavailable(e)), false),
            },
        }
    }

    /// Errors read as misses.
    pub(crate) async fn cache_get_many(
        &self,
        metrics: &Metrics,
        keys: &[[u8; 32]],
    ) -> Vec<Option<Bytes>> {
        let start = Instant::now();
        let result = self.remote.cache_get_many(keys).await;
        self.record(metrics, Op::CacheGet, start, result)
            .unwrap_or_else(|_| vec![None; keys.len()])
    }

    /// Errors skip the write.
    pub(crate) async fn cache_set_many(
        &self,
        metrics: &Metrics,
        items: &[(&[u8; 32], &Bytes, Duration)],
    ) {
        let start = Instant::now();
        let result = self.remote.cache_set_many(items).await;
        let _ = self.record(metrics, Op::CacheSet, start, result);
    }

    /// Stored conversations live in Redis only (a local copy could not be
    /// continued on another replica): an error is the caller's to report.
    pub(crate) async fn responses_get_many(
        &self,
        metrics: &Metrics,
        keys: &[&str],
    ) -> Result<Vec<Option<Bytes>>, StoreError> {
        let start = Instant::now();
        let result = self.remote.responses_get_many(keys).await;
        self.record(metrics, Op::ResponsesGet, start, result)
            .map_err(StoreError::Unavailable)
    }

    pub(crate) async fn responses_put_many(
        &self,
        metrics: &Metrics,
        items: &[(&str, Bytes)],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.remote.responses_put_many(items, ttl).await;
        self.record(metrics, Op::ResponsesPut, start, result)
            .map_err(StoreError::Unavailable)
    }

    pub(crate) async fn responses_delete_many(
        &self,
        metrics: &Metrics,
        keys: &[&str],
    ) -> Result<u64, StoreError> {
        let start = Instant::now();
        let result = self.remote.responses_delete_many(keys).await;
        self.record(metrics, Op::ResponsesDelete, start, result)
            .map_err(StoreError::Unavailable)
    }
}
