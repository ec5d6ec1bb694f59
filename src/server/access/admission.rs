//! Admission: every limit and budget a request is under, checked in one
//! call before it is routed.
//!
//! Place in the pipeline: endpoints call [`admit`] once the route is known
//! and the caller allowed on it (`endpoints::parse_routed`), before the
//! cache and routing. In order: the per-client rate limit, the route's rate
//! limit (in-process token buckets: per replica by design), then one state
//! store call, all or nothing: the key's RPM bucket, the key's and the
//! route's TPM buckets (the request's token estimate is reserved), and the
//! key's token and dollar budgets for the current period: a budget whose
//! counter is at its limit refuses, otherwise the request's estimate is
//! reserved on it as on a TPM bucket (its tokens; its dollars at the
//! dearest price among the route's targets), so that requests in flight
//! count against the budget before they are settled and concurrent ones
//! overshoot it by at most one request's estimate. Each refusal is a 429
//! naming the limit, counted in `switchyard_rate_limited_total` by scope;
//! a spent bucket's `Retry-After` covers the callers refused before
//! ([`hint`]: `resilience::Backlog`), so a burst's retries come back spread
//! over the refill instead of all at once. What was reserved goes into the
//! request context as a [`Settlement`] (see `settlement`), settled with the
//! real usage when the response ends (given back if the request is dropped
//! first). Provider limits are not here: they are per attempt, in each
//! target's attempt stack. When the store refuses to answer (`fail_closed`
//! during an outage) the refusal is logged at most once a second, with the
//! count of the others. Must not decide routes or parse answers; the store
//! decides nothing about keys.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::api::estimate::Estimate;
use crate::api::{ErrorKind, GatewayError};
use crate::config::{BudgetPeriod, KeyBudget, Prices};
use crate::routing::RouteHandle;
use crate::server::edge::context::RequestCtx;
use crate::state::{Admit, Cap, Take, Which, period};

use super::keys::KeyEntry;
use super::settlement::{Bucket, Counter, MICROS, Reserved, Settlement};

/// The key's budget counters, each reserving its part of `estimate` (the
/// dollars in micro-dollars).
fn budget_counters(
    alias: &str,
    b: &KeyBudget,
    now: SystemTime,
    estimate: Estimate,
    micros: u64,
) -> (Option<Counter>, Option<Counter>) {
    let p = period::current(b.period, now);
    // The counter outlives its period a little, so a late settle finds it.
    let ttl = p.remaining + Duration::from_secs(3600);
    let counter = |unit: &'static str, limit: u64, reserved: u64| Counter {
        key: format!("spent:{alias}:{unit}:{}", p.id),
        limit,
        unit,
        ttl,
        reserved,
    };
    (
        b.tokens.map(|t| counter("tokens", t, estimate.total())),
        b.usd
            .map(|usd| counter("usd", (usd * MICROS).round() as u64, micros)),
    )
}

/// `estimate` in micro-dollars at the dearest prices among the route's
/// targets (0 when none is priced).
fn estimated_micros(prices: &Prices, route: &RouteHandle, estimate: Estimate) -> u64 {
    let (mut input, mut output) = (0.0f64, 0.0f64);
    for t in &route.spec.targets {
        if let Some(p) = prices.lookup(&t.provider, &t.model) {
            input = input.max(p.input);
            output = output.max(p.output);
        }
    }
    // Prices are per million tokens: a token costs `price` micro-dollars.
    (estimate.prompt as f64 * input + estimate.output as f64 * output).ceil() as u64
}

/// Checks the request's limits and budgets, reserving `estimate`, and
/// records what was reserved in the context (settled at the end). Without
/// a route (a call that names none), only the client limit applies.
pub(crate) async fn admit(
    rc: &mut RequestCtx,
    route: Option<&RouteHandle>,
    estimate: Estimate,
) -> Result<(), GatewayError> {
    if let Some(limiter) = &rc.rt.client_limiter {
        let spent = limiter.check(&rc.client_key.to_string()).map_err(|wait| {
            let key = format!("client:{}", rc.client_key);
            hint(rc, &key, wait, per_request(limiter.spec().per_second))
        });
        refuse_spent(rc, "client", spent)?;
    }
    let Some(route) = route else {
        return Ok(());
    };
    if let Some(limiter) = &route.limiter {
        let spent = limiter.check().map_err(|wait| {
            let key = format!("route:{}", route.spec.name);
            hint(rc, &key, wait, per_request(limiter.spec().per_second))
        });
        refuse_spent(rc, "route", spent)?;
    }
    rc.settlement = reserve(rc, route, estimate).await?;
    Ok(())
}

/// The `Retry-After` of a 429 for the spent bucket `key`: its own `wait`,
/// spread over the callers refused before (see `resilience::backlog`);
/// `spacing` is how long the bucket takes to refill one request.
fn hint(rc: &RequestCtx, key: &str, wait: Duration, spacing: Duration) -> Duration {
    rc.state.backlog.book(key, wait, spacing)
}

/// How long a bucket refilling `per_second` takes to refill one request.
fn per_request(per_second: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(Duration::from_secs(1))
}

/// Turns a spent in-process bucket into a 429 for `scope`, counting it.
fn refuse_spent(
    rc: &RequestCtx,
    scope: &str,
    checked: Result<(), Duration>,
) -> Result<(), GatewayError> {
    checked.map_err(|wait| {
        rc.state
            .metrics
            .rate_limited
            .with_label_values(&[scope])
            .inc();
        GatewayError::rate_limited(scope, wait)
    })
}

/// Key RPM/TPM, route TPM and budgets: one store call, all or nothing.
async fn reserve(
    ctx: &RequestCtx,
    route: &RouteHandle,
    estimated: Estimate,
) -> Result<Option<Settlement>, GatewayError> {
    let estimate = estimated.total();
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
            let micros = match b.usd {
                Some(_) => estimated_micros(&ctx.rt.policy.prices, route, estimated),
                None => 0,
            };
            (tokens, usd) = budget_counters(&k.alias, b, SystemTime::now(), estimated, micros);
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
            amount: c.reserved,
            ttl: c.ttl,
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
        // Boxed: the store's future (Redis included, about 1.3 KB) would
        // otherwise enlarge every request's future, limits or not.
        Box::pin(store.admit(&take_refs, &cap_refs)).await
    };
    match admitted {
        Ok(Admit::Granted) => {}
        Ok(Admit::Refused { which, wait }) => {
            let metrics = &ctx.state.metrics;
            return Err(match which {
                Which::Take(i) => {
                    let b = &takes[i];
                    metrics.rate_limited.with_label_values(&[b.scope]).inc();
                    // One request's share of the bucket's minute.
                    let per_second = b.capacity.max(1) as f64 / 60.0 / b.amount.max(1) as f64;
                    let spacing = per_request(per_second);
                    let wait = wait.unwrap_or(Duration::from_secs(60));
                    let wait = hint(ctx, &b.key, wait, spacing);
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
        Err(e) => {
            // Under `fail_closed` every request would say this: one line a second.
            if let Some(suppressed) = ctx.state.store_refusals.check() {
                tracing::warn!(error = %e, suppressed, "limits and budgets could not be checked; refusing");
            }
            return Err(unavailable());
        }
    }
    Ok(Some(Settlement::new(Reserved {
        store: store.clone(),
        metrics: Arc::clone(&ctx.state.metrics),
        alias,
        tpm: takes.into_iter().filter(|b| b.scope != "key_rpm").collect(),
        tokens,
        usd,
        provider_tpm,
    })))
}

fn refused_bucket(alias: &str, route: &str, b: &Bucket, wait: Duration) -> GatewayError {
    let what = match b.scope {
        "key_rpm" => format!("key `{alias}`: {} requests per minute", b.capacity),
        "key_tpm" => format!("key `{alias}`: {} tokens per minute", b.capacity),
        _ => format!("model `{route}`: {} tokens per minute", b.capacity),
    };
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

fn unavailable() -> GatewayError {
    GatewayError::new(
        ErrorKind::Unavailable,
        "Limits and budgets cannot be checked right now (the shared state store is unavailable); the gateway is set to refuse rather than serve unchecked. Retry shortly.",
    )
    .with_code("state_unavailable")
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
