//! Admission and settlement: a request's limits and budgets, checked before
//! it is sent and charged with its real usage after.
//!
//! Place in the pipeline: `router::parse_routed` calls [`admit`] once the
//! route is known and the caller allowed on it, before the cache and
//! routing. One store call checks, all or nothing: the key's RPM bucket,
//! the key's and the route's TPM buckets (the request's token estimate is
//! reserved), and the key's token and dollar budgets for the current
//! period. When the response body ends, the context hands the answer's
//! usage to the [`Settlement`], which (on its own task, in one store call)
//! turns the reserved estimate into the real usage, charges providers' TPM
//! buckets with what each served, and adds the spend to the budgets. Must
//! not decide routes or parse answers; the store decides nothing about
//! keys.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::config::{BudgetPeriod, KeyBudget};
use crate::metrics::Metrics;
use crate::state::{Add, Adjust, Admit, Cap, Store, StoreError, Take, Which, period};

use super::keys::KeyEntry;
use super::router::Ctx;

/// One bucket a request takes from.
#[derive(Debug, Clone)]
struct Bucket {
    key: String,
    capacity: u64,
    amount: u64,
    scope: &'static str,
}

/// One budget counter a request is checked against.
#[derive(Debug, Clone)]
struct Counter {
    key: String,
    limit: u64,
    unit: &'static str,
    ttl: Duration,
}

/// What a request reserved, to be settled with its real usage.
#[derive(Debug)]
pub(super) struct Settlement {
    store: Store,
    metrics: Arc<Metrics>,
    alias: Arc<str>,
    /// TPM buckets holding the reserved estimate.
    tpm: Vec<Bucket>,
    /// Budget counters: `[tokens, usd]` when configured.
    tokens: Option<Counter>,
    usd: Option<Counter>,
    /// The route's providers with TPM limits, and those limits: charged
    /// with what each served (routing only held the estimate meanwhile).
    provider_tpm: Arc<[(Arc<str>, u64)]>,
}

/// Micro-dollars per dollar: budgets in dollars count integers.
const MICROS: f64 = 1_000_000.0;

fn budget_counters(
    alias: &str,
    b: &KeyBudget,
    now: SystemTime,
) -> (Option<Counter>, Option<Counter>) {
    let p = period::current(b.period, now);
    // The counter outlives its period a little, so a late settle finds it.
    let ttl = p.remaining + Duration::from_secs(3600);
    let counter = |unit: &'static str, limit: u64| Counter {
        key: format!("spent:{alias}:{unit}:{}", p.id),
        limit,
        unit,
        ttl,
    };
    (
        b.tokens.map(|t| counter("tokens", t)),
        b.usd
            .map(|usd| counter("usd", (usd * MICROS).round() as u64)),
    )
}

/// Checks the request's limits and budgets, reserving `estimate` tokens;
/// on success the settlement is returned for the context to run at the end.
pub(super) async fn admit(
    ctx: &Ctx,
    route: &crate::routing::RouteHandle,
    estimate: u64,
) -> Result<Option<Settlement>, GatewayError> {
    let key: Option<&Arc<KeyEntry>> = ctx.caller.key();
    let mut takes: Vec<Bucket> = Vec::new();
    let (mut tokens, mut usd) = (None, None);
    if let Some(k) = key {
        let spec = &k.spec;
        if let Some(rpm) = spec.rpm {
            takes.push(Bucket {
                key: format!("rpm:k:{}", k.alias),
                capacity: rpm,
                amount: 1,
                scope: "key_rpm",
            });
        }
        if let Some(tpm) = spec.tpm {
            takes.push(Bucket {
                key: format!("tpm:k:{}", k.alias),
                capacity: tpm,
                amount: estimate.min(tpm),
                scope: "key_tpm",
            });
        }
        if let Some(b) = &spec.budget {
            (tokens, usd) = budget_counters(&k.alias, b, SystemTime::now());
        }
    }
    if let Some(tpm) = route.spec.tpm {
        takes.push(Bucket {
            key: format!("tpm:r:{}", route.spec.name),
            capacity: tpm,
            amount: estimate.min(tpm),
            scope: "route_tpm",
        });
    }
    let caps: Vec<&Counter> = tokens.iter().chain(usd.iter()).collect();
    let provider_tpm = Arc::clone(&route.provider_tpm);
    if takes.is_empty() && caps.is_empty() && provider_tpm.is_empty() {
        return Ok(None);
    }
    let store = &ctx.rt.table.store;
    let take_refs: Vec<Take<'_>> = takes
        .iter()
        .map(|b| Take {
            key: &b.key,
            capacity: b.capacity,
            per_minute: b.capacity,
            amount: b.amount,
        })
        .collect();
    let cap_refs: Vec<Cap<'_>> = caps
        .iter()
        .map(|c| Cap {
            key: &c.key,
            limit: c.limit,
        })
        .collect();
    let alias = key.map_or_else(
        || Arc::from(crate::metrics::UNKNOWN_KEY),
        |k| Arc::clone(&k.alias),
    );
    let admitted = if take_refs.is_empty() && cap_refs.is_empty() {
        // Only providers' TPM: held by routing, charged by the settlement.
        Ok(Admit::Granted)
    } else {
        store.admit(&take_refs, &cap_refs).await
    };
    match admitted {
        Ok(Admit::Granted) => {}
        Ok(Admit::Refused { which, wait }) => {
            let metrics = &ctx.state.metrics;
            return Err(match which {
                Which::Take(i) => {
                    let b = &takes[i];
                    metrics.rate_limited.with_label_values(&[b.scope]).inc();
                    refused_bucket(&alias, &route.spec.name, b, wait)
                }
                Which::Cap(i) => {
                    let c = caps[i];
                    metrics.rate_limited.with_label_values(&["budget"]).inc();
                    let period = key
                        .and_then(|k| k.spec.budget.as_ref())
                        .map_or(BudgetPeriod::Day, |b| b.period);
                    budget_spent(&alias, c, period)
                }
            });
        }
        Err(e) => return Err(unavailable(&e)),
    }
    Ok(Some(Settlement {
        store: store.clone(),
        metrics: Arc::clone(&ctx.state.metrics),
        alias,
        tpm: takes.into_iter().filter(|b| b.scope != "key_rpm").collect(),
        tokens,
        usd,
        provider_tpm,
    }))
}

fn refused_bucket(alias: &str, route: &str, b: &Bucket, wait: Option<Duration>) -> GatewayError {
    let what = match b.scope {
        "key_rpm" => format!("key `{alias}`: {} requests per minute", b.capacity),
        "key_tpm" => format!("key `{alias}`: {} tokens per minute", b.capacity),
        _ => format!("model `{route}`: {} tokens per minute", b.capacity),
    };
    let wait = wait.unwrap_or(Duration::from_secs(60));
    GatewayError::rate_limited(&what, wait)
}

fn budget_spent(alias: &str, c: &Counter, period: BudgetPeriod) -> GatewayError {
    let p = period::current(period, SystemTime::now());
    let (amount, span) = match (c.unit, period) {
        ("usd", BudgetPeriod::Day) => (dollars(c.limit), "today"),
        ("usd", BudgetPeriod::Month) => (dollars(c.limit), "this month"),
        (_, BudgetPeriod::Day) => (format!("{} tokens", c.limit), "today"),
        (_, BudgetPeriod::Month) => (format!("{} tokens", c.limit), "this month"),
    };
    // Whole seconds, rounded up: the budget is open again after this.
    let wait = Duration::from_secs(p.remaining.as_secs() + 1);
    GatewayError::new(
        ErrorKind::RateLimited,
        format!(
            "Budget exhausted: key `{alias}` has spent its {amount} {span}; it renews in {}s (at the start of the next UTC {}).",
            wait.as_secs(),
            if period == BudgetPeriod::Day { "day" } else { "month" }
        ),
    )
    .with_code("budget_exceeded")
    .with_retry_after(wait)
    // Retrying sooner cannot help: tell SDKs not to.
    .final_after_retries()
}

fn unavailable(e: &StoreError) -> GatewayError {
    tracing::warn!(error = %e, "limits and budgets could not be checked");
    GatewayError::new(
        ErrorKind::Unavailable,
        "Limits and budgets cannot be checked right now (the shared state store is unavailable); the gateway is set to refuse rather than serve unchecked. Retry shortly.",
    )
    .with_code("state_unavailable")
}

impl Settlement {
    /// Charges `usage` (none: the request spent nothing upstream, say a
    /// cache hit or a failure) and `cost_usd` on the request's own task, so
    /// the end of the response never waits for the store.
    pub(super) fn settle(
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
                    amount: used,
                    ttl: c.ttl,
                });
                counted.push(c);
            }
            if let Some(c) = &self.usd {
                let micros = cost_usd.map_or(0, |d| (d * MICROS).round() as u64);
                adds.push(Add {
                    key: &c.key,
                    amount: micros,
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

/// `micros` as dollars: cents when whole cents, else every digit (a
/// $0.005 budget must not read "$0.00").
fn dollars(micros: u64) -> String {
    let d = micros as f64 / MICROS;
    if micros.is_multiple_of(10_000) {
        format!("${d:.2}")
    } else {
        format!("${d}")
    }
}
