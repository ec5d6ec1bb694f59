//! Validation of one provider or one route entry into its policy spec.
//!
//! Place in the pipeline: called by `validate` for each merged entry. Applies
//! defaults, checks kind-specific fields and cross references (a route's
//! targets must name defined providers), and records every error at the
//! [`Loc`] of the offending field (a list item is `targets[i]`), so it is
//! reported at that field's own line. Must not build runtime objects.

use std::collections::BTreeMap;
use std::time::Duration;

use super::access::CacheScope;
use super::fields::FieldReader;
use super::merge::Merged;
use super::policy::*;
use super::raw::{RawBudget, RawConcurrency, RawProvider, RawRoute};
use super::report::Loc;
use super::route_entries;
use super::route_spec::*;

/// Shipped default timeouts (the reasons are in docs/failure-behaviour.md):
/// a connect survives one lost SYN (Linux resends it after 1 s); `first_byte`
/// stays long because a non-streaming answer's headers come only once the
/// whole answer is generated; `idle` and `body` are short because a healthy
/// body, once its headers are sent, keeps moving: a trickling or stalled
/// upstream is abandoned within seconds.
const DEFAULT_CONNECT: Duration = Duration::from_secs(3);
const DEFAULT_IDLE: Duration = Duration::from_secs(15);
const DEFAULT_BODY: Duration = Duration::from_secs(5);
/// `concurrency.adaptive.max` when not given: the share of the gateway
/// caps it anyway.
const DEFAULT_ADAPTIVE_MAX: usize = 1024;

/// `providers.<name>.concurrency`: `max_in_flight` or `adaptive`, not both.
fn concurrency(cx: &mut FieldReader, loc: &Loc, raw: Option<&RawConcurrency>) -> ConcurrencySpec {
    let d = ConcurrencySpec::default();
    let Some(raw) = raw else { return d };
    let max_wait = cx.duration_or_zero(&loc.field("max_wait"), &raw.max_wait, d.max_wait);
    let limit = match (raw.max_in_flight, &raw.adaptive) {
        (Some(_), Some(_)) => {
            cx.errors.at(
                &loc.field("adaptive"),
                "set either max_in_flight (a fixed limit) or adaptive, not both",
            );
            d.limit
        }
        (Some(0), None) => {
            cx.errors
                .at(&loc.field("max_in_flight"), "must be at least 1");
            d.limit
        }
        (Some(n), None) => LimitSpec::Fixed(Some(n)),
        (None, Some(a)) => {
            let min = cx.positive(&loc.field("adaptive.min"), a.min, 1);
            let max = cx.positive(&loc.field("adaptive.max"), a.max, DEFAULT_ADAPTIVE_MAX);
            if min > max {
                cx.errors
                    .at(&loc.field("adaptive.min"), "must not exceed adaptive.max");
            }
            LimitSpec::Adaptive {
                min,
                max: max.max(min),
            }
        }
        (None, None) => d.limit,
    };
    ConcurrencySpec { limit, max_wait }
}

pub(super) fn provider(
    cx: &mut FieldReader,
    loc: &Loc,
    name: &str,
    p: &RawProvider,
) -> Option<(ProviderSpec, bool)> {
    let errors_before = cx.errors.len();
    // Which kinds exist, and what their own keys mean, is for `providers`
    // to say (it reads `settings`); here only that a kind is named.
    let kind = match p.kind.as_deref().map(str::trim) {
        Some(k) if !k.is_empty() => k.to_string(),
        _ => {
            cx.errors.at(&loc.field("kind"), "is required");
            return None;
        }
    };
    let t = p.timeouts.as_ref();
    let timeouts = Timeouts {
        connect: cx.duration(
            &loc.field("timeouts.connect"),
            &t.and_then(|t| t.connect.clone()),
            DEFAULT_CONNECT,
        ),
        first_byte: cx.duration(
            &loc.field("timeouts.first_byte"),
            &t.and_then(|t| t.first_byte.clone()),
            Duration::from_secs(60),
        ),
        idle: cx.duration(
            &loc.field("timeouts.idle"),
            &t.and_then(|t| t.idle.clone()),
            DEFAULT_IDLE,
        ),
        body: cx.duration(
            &loc.field("timeouts.body"),
            &t.and_then(|t| t.body.clone()),
            DEFAULT_BODY,
        ),
        total: cx.duration(
            &loc.field("timeouts.total"),
            &t.and_then(|t| t.total.clone()),
            Duration::from_secs(300),
        ),
    };
    let b = p.breaker.as_ref();
    let breaker = BreakerSpec {
        failure_threshold: cx.positive(
            &loc.field("breaker.failure_threshold"),
            b.and_then(|b| b.failure_threshold).map(|v| v as usize),
            5,
        ) as u32,
        open_for: cx.duration(
            &loc.field("breaker.open_for"),
            &b.and_then(|b| b.open_for.clone()),
            Duration::from_secs(30),
        ),
        half_open_probes: cx.positive(
            &loc.field("breaker.half_open_probes"),
            b.and_then(|b| b.half_open_probes).map(|v| v as usize),
            1,
        ) as u32,
        count_rate_limits: b.and_then(|b| b.count_rate_limits).unwrap_or(true),
    };
    let rate_limit = cx.rate(&loc.field("rate_limit"), &p.rate_limit);
    let max_batch_inputs = cx.positive(&loc.field("max_batch_inputs"), p.max_batch_inputs, 2048);
    let max_response_bytes = match p.max_response_bytes {
        Some(0) => {
            cx.errors
                .at(&loc.field("max_response_bytes"), "must be at least 1");
            0
        }
        Some(v) => v,
        None => 64 * 1024 * 1024,
    };
    let tpm = cx.per_minute(&loc.field("tpm"), p.tpm);
    let concurrency = concurrency(cx, &loc.field("concurrency"), p.concurrency.as_ref());
    let spec = ProviderSpec {
        concurrency,
        tpm,
        name: name.to_string(),
        kind,
        settings: p.settings.clone(),
        timeouts,
        breaker,
        rate_limit,
        max_batch_inputs,
        max_response_bytes,
    };
    // The spec also when its shared keys are wrong, so that its kind keys
    // are checked (and reported) in the same run.
    Some((spec, cx.errors.len() == errors_before))
}

pub(super) fn route(
    cx: &mut FieldReader,
    loc: &Loc,
    name: &str,
    r: &RawRoute,
    m: &Merged,
    providers: &BTreeMap<String, ProviderSpec>,
    cache: &CacheSettings,
) -> Option<RouteSpec> {
    let errors_before = cx.errors.len();
    let strategy = match r.strategy.as_deref() {
        None => Strategy::Failover,
        Some(name) => Strategy::parse(name).unwrap_or_else(|| {
            cx.errors.at(
                &loc.field("strategy"),
                format!("unknown strategy {name:?} (expected {})", Strategy::NAMES),
            );
            Strategy::Failover
        }),
    };
    if r.targets.is_empty() {
        cx.errors
            .at(&loc.field("targets"), "needs at least one target");
    }
    let patterns = r.patterns.clone().unwrap_or_default();
    let aliases = r.aliases.clone().unwrap_or_default();
    super::names::check_route_names(cx.errors, loc, &patterns, &aliases);
    let targets = route_entries::targets(
        cx,
        &loc.field("targets"),
        name,
        !patterns.is_empty(),
        &r.targets,
        m,
        providers,
    );
    let rr = r.retry.as_ref();
    let max_attempts = rr.and_then(|r| r.max_attempts).unwrap_or(3);
    if !(1..=10).contains(&max_attempts) {
        cx.errors
            .at(&loc.field("retry.max_attempts"), "must be between 1 and 10");
    }
    let retry = RetrySpec {
        max_attempts,
        initial_backoff: cx.duration(
            &loc.field("retry.initial_backoff"),
            &rr.and_then(|r| r.initial_backoff.clone()),
            Duration::from_millis(100),
        ),
        max_backoff: cx.duration(
            &loc.field("retry.max_backoff"),
            &rr.and_then(|r| r.max_backoff.clone()),
            Duration::from_secs(5),
        ),
        jitter: rr.and_then(|r| r.jitter).unwrap_or(true),
        max_retry_after: cx.duration(
            &loc.field("retry.max_retry_after"),
            &rr.and_then(|r| r.max_retry_after.clone()),
            Duration::from_secs(10),
        ),
        on_rate_limit: match rr.and_then(|r| r.on_rate_limit.as_deref()) {
            None | Some("failover") => OnRateLimit::Failover,
            Some("wait") => OnRateLimit::Wait,
            Some(other) => {
                cx.errors.at(
                    &loc.field("retry.on_rate_limit"),
                    format!("unknown value {other:?} (expected failover or wait)"),
                );
                OnRateLimit::Failover
            }
        },
        budget: budget(
            cx,
            &loc.field("retry.budget"),
            rr.and_then(|r| r.budget.as_ref()),
        ),
    };
    if retry.initial_backoff > retry.max_backoff {
        cx.errors.at(
            &loc.field("retry.initial_backoff"),
            "must not exceed retry.max_backoff",
        );
    }
    let rc = r.cache.as_ref();
    let scope = match rc.and_then(|c| c.scope.as_deref()) {
        None | Some("shared") => CacheScope::Shared,
        Some("per_key") => CacheScope::PerKey,
        Some(other) => {
            cx.errors.at(
                &loc.field("cache.scope"),
                format!("unknown scope {other:?} (expected shared or per_key)"),
            );
            CacheScope::Shared
        }
    };
    let route_cache = RouteCache {
        scope,
        enabled: rc.and_then(|c| c.enabled).unwrap_or(false),
        ttl: cx.duration(
            &loc.field("cache.ttl"),
            &rc.and_then(|c| c.ttl.clone()),
            cache.default_ttl,
        ),
        stale_if_error: super::degrade::stale_if_error(
            cx,
            &loc.field("cache.stale_if_error"),
            rc.and_then(|c| c.stale_if_error.as_ref()),
        ),
    };
    let stream = super::degrade::stream_spec(cx, loc, r);
    let rate_limit = cx.rate(&loc.field("rate_limit"), &r.rate_limit);
    let max_concurrency = match r.fanout.as_ref().and_then(|f| f.max_concurrency) {
        Some(0) => {
            cx.errors
                .at(&loc.field("fanout.max_concurrency"), "must be at least 1");
            None
        }
        n => n,
    };
    let deadline = r.deadline.as_ref().map(|_| {
        cx.duration(
            &loc.field("deadline"),
            &r.deadline,
            Duration::from_secs(300),
        )
    });
    let mut endpoints = Vec::new();
    for (i, e) in r.endpoints.iter().flatten().enumerate() {
        match e.as_str() {
            "chat" => endpoints.push(Endpoint::Chat),
            "embeddings" => endpoints.push(Endpoint::Embeddings),
            "rerank" => endpoints.push(Endpoint::Rerank),
            other => cx.errors.at(
                &loc.field("endpoints").index(i),
                format!("unknown endpoint {other:?} (expected chat, embeddings or rerank)"),
            ),
        }
    }
    let tpm = cx.per_minute(&loc.field("tpm"), r.tpm);
    let unsupported = match r.unsupported.as_deref() {
        None | Some("reject") => Unsupported::Reject,
        Some("drop") => Unsupported::Drop,
        Some(other) => {
            cx.errors.at(
                &loc.field("unsupported"),
                format!("unknown value {other:?} (expected reject or drop)"),
            );
            Unsupported::Reject
        }
    };
    let messages_max_tokens = r.messages.as_ref().and_then(|m| m.default_max_tokens);
    if messages_max_tokens == Some(0) {
        cx.errors.at(
            &loc.field("messages.default_max_tokens"),
            "must be at least 1",
        );
    }
    let latency_decay = cx.duration(
        &loc.field("latency.decay"),
        &r.latency.as_ref().and_then(|l| l.decay.clone()),
        Duration::from_secs(10),
    );
    let hedge = r
        .hedge
        .as_ref()
        .map(|h| route_entries::hedge(cx, &loc.field("hedge"), h));
    let affinity = r
        .affinity
        .as_ref()
        .map(|a| route_entries::affinity(cx, &loc.field("affinity"), a));
    let fallbacks = route_entries::fallbacks(cx, &loc.field("fallbacks"), name, r, m, providers);
    (cx.errors.len() == errors_before).then(|| RouteSpec {
        latency_decay,
        hedge,
        affinity,
        fallbacks,
        tpm,
        unsupported,
        messages_max_tokens,
        name: name.to_string(),
        patterns,
        aliases,
        strategy,
        targets,
        retry,
        cache: route_cache,
        rate_limit,
        max_concurrency,
        deadline,
        endpoints,
        stream,
    })
}

fn budget(cx: &mut FieldReader, loc: &Loc, raw: Option<&RawBudget>) -> BudgetSpec {
    let d = RawBudget::default();
    let raw = raw.unwrap_or(&d);
    let ratio = raw.ratio.unwrap_or(0.2);
    if !(0.0..=10.0).contains(&ratio) {
        cx.errors
            .at(&loc.field("ratio"), "must be between 0 and 10");
    }
    let window = cx.duration(&loc.field("window"), &raw.window, Duration::from_secs(10));
    if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&window) {
        cx.errors
            .at(&loc.field("window"), "must be between 1s and 60s");
    }
    let min_per_second = raw.min_per_second.unwrap_or(5);
    if min_per_second > 1_000_000 {
        cx.errors
            .at(&loc.field("min_per_second"), "must be at most 1000000");
    }
    BudgetSpec {
        ratio: ratio.clamp(0.0, 10.0),
        min_per_second: min_per_second.min(1_000_000),
        window: window.clamp(Duration::from_secs(1), Duration::from_secs(60)),
    }
}
