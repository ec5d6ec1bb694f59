//! Prometheus metrics, all named `switchyard_*`, owned by one [`Metrics`].
//!
//! Place in the pipeline: a leaf handed (as `Arc<Metrics>`) to every layer
//! that counts something; `/metrics` renders its registry. There are no
//! global statics: each gateway (and each test) has its own registry. Label
//! values are bounded: routes and providers come from the policy, never from
//! raw client input, and a client's `key` label is the alias of a
//! configured virtual key (all others fold into `_unknown`), never the key.
//! `sample` and `window` read the registry back (off the request path) for
//! the live page: totals at an instant, and rolling windows over them.
//! `warn` is the gate for repeated warnings (at most one line a second, with
//! a count of what was held back), owned like the metrics by whoever warns.

pub mod sample;
pub mod series;
pub mod warn;
pub mod window;

use prometheus::{
    Counter, CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label used when a request names no configured route.
pub const UNKNOWN_ROUTE: &str = "_unknown";

/// `key` label of callers without a configured virtual key (all fold into one).
pub const UNKNOWN_KEY: &str = "_unknown";

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    /// The busy-poll window now (`server::edge::busy_poll`).
    pub busy_poll_window: Gauge,
    /// Time runtime workers were kept from sleeping by busy polling.
    pub busy_poll_seconds: Counter,
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub retries: IntCounterVec,
    pub retry_budget_exhausted: IntCounterVec,
    pub failovers: IntCounterVec,
    pub hedges: IntCounterVec,
    pub hedges_won: IntCounterVec,
    pub hedges_refused: IntCounterVec,
    pub stream_interruptions: IntCounterVec,
    pub client_connections: IntGauge,
    pub accept_errors: IntCounter,
    pub breaker_state: IntGaugeVec,
    pub breaker_transitions: IntCounterVec,
    pub cache_hits: IntCounterVec,
    pub cache_misses: IntCounterVec,
    pub cache_bytes: IntGauge,
    pub cache_entries: IntGauge,
    pub coalesced: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub fanout_sub_batches: IntCounterVec,
    pub fanout_inputs: HistogramVec,
    pub reloads: IntCounterVec,
    pub policy_generation: IntGauge,
    pub last_reload_success: IntGauge,
    pub state_errors: IntCounterVec,
    pub state_up: IntGauge,
    pub state_duration: HistogramVec,
    pub tokens: IntCounterVec,
    /// Request fields a translation accepted and did not send upstream.
    pub ignored_fields: IntCounterVec,
    pub cost_usd: CounterVec,
    /// Set by the budget owner; registered here.
    pub budget_remaining: GaugeVec,
    pub provider_limit: IntGaugeVec,
    pub provider_in_flight: IntGaugeVec,
    /// Read at scrape time from each provider's HTTP client.
    pub provider_connections: IntGaugeVec,
    pub provider_refusals: IntCounterVec,
    pub connections_closed: IntCounterVec,
    pub stream_stalls: IntCounterVec,
    pub stream_continuations: IntCounterVec,
    pub cache_stale: IntCounterVec,
}

/// Round trips to the shared state store: 100µs to 100ms.
const STATE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// Buckets of the request and upstream latency histograms, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// `c`, registered in `registry`.
fn registered<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            registered(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels);
            registered(&registry, h.expect("valid metric"))
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            registered(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "switchyard_breaker_state",
                "Circuit breaker state per provider: 0 closed, 1 open, 2 half-open.",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let breaker_state = registered(&registry, breaker_state);
        let cost_usd = CounterVec::new(
            Opts::new(
                "switchyard_cost_usd_total",
                "Upstream spend in US dollars from the policy's per-model prices; \
                 tokens of models without a price are counted in switchyard_tokens_total only.",
            ),
            &["route", "provider", "key"],
        )
        .expect("valid metric");
        let budget_remaining = GaugeVec::new(
            Opts::new(
                "switchyard_budget_remaining",
                "What is left of a key's budget this period, by unit (tokens, usd).",
            ),
            &["key", "unit"],
        )
        .expect("valid metric");
        let (cost_usd, budget_remaining) = (
            registered(&registry, cost_usd),
            registered(&registry, budget_remaining),
        );
        Metrics {
            tokens: counter(
                "switchyard_tokens_total",
                "Tokens upstreams reported for answers (gateway cache hits spend none), by kind: \
                 prompt (all of it), cached (the part the provider served from its prompt \
                 cache), completion.",
                &["route", "provider", "key", "kind"],
            ),
            ignored_fields: counter(
                "switchyard_ignored_fields_total",
                "Request fields accepted and not sent upstream (named in the \
                 x-switchyard-ignored header), by route and field; client-chosen names \
                 count as unknown_field.",
                &["route", "field"],
            ),
            cost_usd,
            budget_remaining,
            requests: counter(
                "switchyard_requests_total",
                "Client requests by endpoint, route and HTTP status.",
                &["endpoint", "route", "status"],
            ),
            request_duration: histogram(
                "switchyard_request_duration_seconds",
                "Client request latency until response headers.",
                &["endpoint", "route"],
                LATENCY_BUCKETS.to_vec(),
            ),
            in_flight: gauge(
                "switchyard_requests_in_flight",
                "Client requests being served now.",
            ),
            upstream_requests: counter(
                "switchyard_upstream_requests_total",
                "Upstream attempts by provider and outcome.",
                &["provider", "outcome"],
            ),
            upstream_duration: histogram(
                "switchyard_upstream_duration_seconds",
                "Upstream attempt latency until the answer (a stream: its first event).",
                &["provider"],
                LATENCY_BUCKETS.to_vec(),
            ),
            retries: counter(
                "switchyard_retries_total",
                "Retries of an upstream call on the same target.",
                &["route", "provider"],
            ),
            retry_budget_exhausted: counter(
                "switchyard_retry_budget_exhausted_total",
                "Retries not made because the route's retry budget was spent.",
                &["route"],
            ),
            stream_interruptions: counter(
                "switchyard_stream_interruptions_total",
                "Streams that failed after the response started (ended with an SSE error event).",
                &["route", "provider"],
            ),
            client_connections: gauge("switchyard_client_connections", "Open client connections."),
            busy_poll_window: registered(
                &registry,
                Gauge::new(
                    "switchyard_busy_poll_window_seconds",
                    "How long the runtime polls sockets after a request starts or ends before sleeping (0: not now).",
                )
                .expect("valid metric"),
            ),
            busy_poll_seconds: registered(
                &registry,
                Counter::new(
                    "switchyard_busy_poll_seconds_total",
                    "Time runtime workers spent polling sockets instead of sleeping (work done meanwhile included).",
                )
                .expect("valid metric"),
            ),
            accept_errors: registered(
                &registry,
                IntCounter::new(
                    "switchyard_accept_errors_total",
                    "Failed accepts of client connections (e.g. out of file descriptors).",
                )
                .expect("valid metric"),
            ),
            failovers: counter(
                "switchyard_failovers_total",
                "Moves from one target to the next after it failed.",
                &["route"],
            ),
            hedges: counter(
                "switchyard_hedges_total",
                "Hedged attempts sent: a second attempt because the first had not answered in time.",
                &["route"],
            ),
            hedges_won: counter(
                "switchyard_hedges_won_total",
                "Hedged attempts that answered first (the slow first attempt was cancelled).",
                &["route"],
            ),
            hedges_refused: counter(
                "switchyard_hedges_refused_total",
                "Hedges not sent: the route's hedge rate cap (rate) or retry budget (budget) was spent.",
                &["route", "reason"],
            ),
            breaker_state,
            breaker_transitions: counter(
                "switchyard_breaker_transitions_total",
                "Circuit breaker state changes.",
                &["provider", "to"],
            ),
            cache_hits: counter(
                "switchyard_cache_hits_total",
                "Cache hits (chat: per request; embeddings: per input).",
                &["route", "kind"],
            ),
            cache_misses: counter(
                "switchyard_cache_misses_total",
                "Cache misses (chat: per request; embeddings: per input).",
                &["route", "kind"],
            ),
            cache_bytes: gauge(
                "switchyard_cache_bytes",
                "Bytes held by the response cache.",
            ),
            cache_entries: gauge("switchyard_cache_entries", "Entries in the response cache."),
            coalesced: counter(
                "switchyard_coalesced_requests_total",
                "Requests that shared an identical in-flight upstream call.",
                &["route", "kind"],
            ),
            rate_limited: counter(
                "switchyard_rate_limited_total",
                "Requests refused or diverted by a rate limit, by scope.",
                &["scope"],
            ),
            fanout_sub_batches: counter(
                "switchyard_fanout_sub_batches_total",
                "Embedding sub-batches sent upstream.",
                &["route"],
            ),
            fanout_inputs: histogram(
                "switchyard_fanout_batch_inputs",
                "Inputs per embedding request sent upstream after cache lookup.",
                &["route"],
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
                ],
            ),
            reloads: counter(
                "switchyard_policy_reloads_total",
                "Policy reload attempts by result (success, failure).",
                &["result"],
            ),
            policy_generation: gauge(
                "switchyard_policy_generation",
                "Generation number of the policy in force.",
            ),
            last_reload_success: gauge(
                "switchyard_policy_last_reload_success",
                "1 if the last reload attempt succeeded, 0 if it was rejected.",
            ),
            state_errors: counter(
                "switchyard_state_errors_total",
                "Calls to the shared state store (Redis) that failed or timed out, by operation.",
                &["op"],
            ),
            state_up: gauge(
                "switchyard_state_up",
                "1 if the last call to the shared state store succeeded (memory backend: always 1).",
            ),
            state_duration: histogram(
                "switchyard_state_duration_seconds",
                "Round trips to the shared state store (Redis), by operation.",
                &["op"],
                STATE_BUCKETS.to_vec(),
            ),
            provider_limit: gauges(
                "switchyard_provider_concurrency_limit",
                "A provider's concurrency limit now (fixed, adaptive or ramping up after its \
                 breaker closed), under its share of the gateway's request slots.",
                &["provider"],
            ),
            provider_in_flight: gauges(
                "switchyard_provider_in_flight",
                "Calls in flight to a provider (a stream until its end).",
                &["provider"],
            ),
            provider_connections: gauges(
                "switchyard_provider_upstream_connections",
                "Connections open to a provider's upstream (never more than its calls in \
                 flight; HTTP/2 carries many calls on one).",
                &["provider"],
            ),
            provider_refusals: counter(
                "switchyard_provider_refusals_total",
                "Attempts not made because the provider was at its concurrency limit, by reason: \
                 at_limit (moved to the next target at once), wait_timeout (the last target \
                 stayed full for max_wait), share_full (its share of the gateway is taken, \
                 waiting requests included).",
                &["provider", "reason"],
            ),
            connections_closed: counter(
                "switchyard_connections_closed_total",
                "Client connections the gateway closed, by reason: per_peer_limit (over \
                 connections.max_per_peer when accepted), first_request_timeout, idle_timeout, \
                 header_read_timeout (HTTP/1: no next request head in time).",
                &["reason"],
            ),
            stream_stalls: counter(
                "switchyard_stream_stalls_total",
                "Streams whose token rate after the first token fell below the route's stream_min_rate.",
                &["route", "provider"],
            ),
            stream_continuations: counter(
                "switchyard_stream_continuations_total",
                "Streams that broke after content and were continued on another target (provider: the one that broke).",
                &["route", "provider"],
            ),
            cache_stale: counter(
                "switchyard_cache_stale_served_total",
                "Expired cache entries served because every target failed (stale_if_error); embeddings and rerank: per item.",
                &["route", "kind"],
            ),
            registry,
        }
    }

    /// Text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
