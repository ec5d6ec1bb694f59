//! The validated, immutable policy: what the gateway actually runs on.
//!
//! Place in the pipeline: produced by `validate`, consumed by everything that
//! is built from configuration (routing tables, limiters, breakers, cache).
//! Every field has its final value: defaults are applied, durations parsed,
//! references checked. Must not be mutated after construction; a reload makes
//! a new `Policy` and swaps it in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub server: ServerSettings,
    pub cache: CacheSettings,
    pub client_limit: Option<RateSpec>,
    pub providers: BTreeMap<String, ProviderSpec>,
    pub routes: BTreeMap<String, RouteSpec>,
    /// Virtual keys, by alias.
    pub keys: Vec<super::access::KeySpec>,
    pub prices: super::access::Prices,
    pub state: super::access::StateSettings,
    /// Routes' aliases and `match` patterns, for resolving requested names.
    pub names: super::names::ModelNames,
    /// `tracing:` and the `OTEL_*` variables: where spans are exported;
    /// `None` when tracing is off (the default).
    pub tracing: Option<super::telemetry::TracingSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: String,
    pub max_body_bytes: u64,
    pub max_concurrent_requests: usize,
    /// The fraction of `max_concurrent_requests` one provider may hold
    /// (calls in flight and requests waiting for it): its bulkhead.
    pub provider_share: f64,
    pub shutdown_grace: Duration,
    pub reload_interval: Duration,
    /// Bearer token required on /admin/*; `None` leaves admin open (bind to loopback then).
    pub admin_token: Option<Secret>,
    /// On shutdown, how long `/readyz` says 503 while the gateway still
    /// serves, before it stops accepting connections.
    pub drain_delay: Duration,
    pub connections: ConnectionSettings,
    /// Cross-origin access for browser clients; `None` answers no CORS at all.
    pub cors: Option<CorsSettings>,
    /// `server.compression`; `None` (the default) sends every answer as it is.
    pub compression: Option<super::compression::CompressionSettings>,
    /// `server.auth`: open (default) or required.
    pub auth: super::access::AuthMode,
    /// `server.dashboard`: the live page and its stats JSON.
    pub dashboard: super::dashboard::DashboardSettings,
}

/// CORS: which browser origins may call the gateway, with which headers.
#[derive(Debug, Clone, PartialEq)]
pub struct CorsSettings {
    pub allowed_origins: AllowedOrigins,
    /// Request headers a preflight may ask for; `None` allows whatever it asks.
    pub allowed_headers: Option<Vec<String>>,
    /// How long a browser may cache a preflight answer.
    pub max_age: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AllowedOrigins {
    /// `"*"`: any origin.
    Any,
    /// Exact origins (`https://app.example.com`), lower-case scheme and host.
    List(Vec<String>),
}

/// Client connection limits; applied to connections accepted after a reload.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    /// Open client connections at most; further ones wait in the backlog.
    pub max: usize,
    /// HTTP/1: time to receive a request's headers, counted from the end of
    /// the previous response (so it also bounds keep-alive idling).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// A connection that has not sent a whole request head within this
    /// long of being accepted is closed.
    pub first_request_timeout: Duration,
    /// Open connections from one peer address at most; more are closed
    /// as soon as they are accepted.
    pub max_per_peer: usize,
    /// Loopback peers (a sidecar, a local proxy) are not held to
    /// `max_per_peer`.
    pub loopback_exempt: bool,
    pub http2_keep_alive_interval: Duration,
    pub http2_keep_alive_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub max_bytes: u64,
    /// Larger answers are served but not cached.
    pub max_entry_bytes: u64,
    pub default_ttl: Duration,
}

/// A token-bucket rate: sustained `per_second`, bursts up to `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSpec {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    pub name: String,
    /// The provider kind (`openai`, `mock`, `anthropic`, ...); `providers`
    /// knows which exist and reads `settings` for it.
    pub kind: String,
    pub settings: super::kind::KindSettings,
    pub timeouts: Timeouts,
    pub breaker: BreakerSpec,
    pub rate_limit: Option<RateSpec>,
    pub max_batch_inputs: usize,
    /// An upstream answer larger than this is refused (not buffered whole).
    pub max_response_bytes: u64,
    /// Tokens per minute across every route using this provider.
    pub tpm: Option<u64>,
    /// Calls in flight at once: a fixed cap or an adaptive limit.
    pub concurrency: ConcurrencySpec,
}

/// A provider's concurrency limit (its bulkhead), under the gateway-wide
/// share (`server.provider_share`) in every case.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencySpec {
    pub limit: LimitSpec,
    /// How long a call whose last target is at its limit waits for a slot
    /// (zero: never waits).
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSpec {
    /// `max_in_flight`; `None`: only the gateway-wide share.
    Fixed(Option<usize>),
    /// `adaptive: {min, max}`: learned from latency and overload signals.
    Adaptive { min: usize, max: usize },
}

impl Default for ConcurrencySpec {
    fn default() -> Self {
        ConcurrencySpec {
            limit: LimitSpec::Fixed(None),
            max_wait: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    /// Longest silence between two body chunks (bodies and streams).
    pub idle: Duration,
    /// Non-streaming answers: from response headers to the end of the body.
    pub body: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSpec {
    pub failure_threshold: u32,
    pub open_for: Duration,
    pub half_open_probes: u32,
    /// Upstream 429s count as failures.
    pub count_rate_limits: bool,
}

/// How a route orders its targets for each call (`strategy:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// As listed.
    Failover,
    /// Random, biased by `weight`.
    Weighted,
    /// Power of two choices by peak-EWMA latency times calls in flight.
    LeastLatency,
    /// Fewest calls in flight relative to the provider's concurrency limit.
    LeastBusy,
    /// Cheapest by `prices:` at the call's token estimate, ties by latency.
    Cost,
}

impl Strategy {
    pub const NAMES: &'static str = "failover, weighted, least_latency, least_busy or cost";

    pub fn parse(name: &str) -> Option<Strategy> {
        Some(match name {
            "failover" => Strategy::Failover,
            "weighted" => Strategy::Weighted,
            "least_latency" => Strategy::LeastLatency,
            "least_busy" => Strategy::LeastBusy,
            "cost" => Strategy::Cost,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Failover => "failover",
            Strategy::Weighted => "weighted",
            Strategy::LeastLatency => "least_latency",
            Strategy::LeastBusy => "least_busy",
            Strategy::Cost => "cost",
        }
    }
}

/// `routes.<name>.hedge`: a second attempt on another target when the first
/// is slow.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgeSpec {
    pub delay: HedgeDelay,
    /// Hedges sent per second at most (a bucket of this size).
    pub max_per_second: f64,
}

/// When a hedge is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// After this long without an answer.
    Fixed(Duration),
    /// After this percentile (0 < p < 100) of the first target's recent
    /// latency; no hedge until it has enough samples.
    Percentile(f64),
}

/// `routes.<name>.affinity`: requests of one conversation to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinitySpec {
    pub by: AffinityBy,
    /// A conversation not seen for this long is forgotten.
    pub ttl: Duration,
    /// Conversations remembered at most (per route and replica).
    pub max_entries: usize,
}

/// What identifies a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AffinityBy {
    /// The body's `prompt_cache_key`, `safety_identifier` or `user`
    /// (Messages: `metadata.user_id`), the first one present.
    User,
    /// A request header (lower-case name).
    Header(String),
    /// A hash of the leading `n` messages (with the system prompt).
    Prefix(usize),
}

/// An error class a route can fall back on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackClass {
    ContextWindow,
    ContentPolicy,
    Quota,
}

/// `routes.<name>.fallbacks`: other targets for errors of a class.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fallbacks {
    pub context_window: Option<Fallback>,
    pub content_policy: Option<Fallback>,
    pub quota: Option<Fallback>,
}

impl Fallbacks {
    pub fn get(&self, class: FallbackClass) -> Option<&Fallback> {
        match class {
            FallbackClass::ContextWindow => self.context_window.as_ref(),
            FallbackClass::ContentPolicy => self.content_policy.as_ref(),
            FallbackClass::Quota => self.quota.as_ref(),
        }
    }

    /// Every fallback with its class.
    pub fn iter(&self) -> impl Iterator<Item = (FallbackClass, &Fallback)> {
        [
            (FallbackClass::ContextWindow, &self.context_window),
            (FallbackClass::ContentPolicy, &self.content_policy),
            (FallbackClass::Quota, &self.quota),
        ]
        .into_iter()
        .filter_map(|(c, f)| f.as_ref().map(|f| (c, f)))
    }
}

/// One fallback: its own target list, or another route's (copied in when
/// the policy is validated; that route's own fallbacks are not followed).
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    /// `file:line: routes.<name>.fallbacks.<class>`, for later errors.
    pub location: String,
    pub route: Option<String>,
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub name: String,
    /// `match:` glob patterns of requested names this route serves (an
    /// exact route name or alias of another route comes first).
    pub patterns: Vec<String>,
    /// `aliases:` other exact names this route serves.
    pub aliases: Vec<String>,
    pub strategy: Strategy,
    pub targets: Vec<TargetSpec>,
    pub retry: RetrySpec,
    pub cache: RouteCache,
    pub rate_limit: Option<RateSpec>,
    /// `fanout.max_concurrency` when set: the most sub-batches in flight
    /// (see `RouteTable::fanout_width` for how it combines with the
    /// providers' limits).
    pub max_concurrency: Option<usize>,
    /// Bound on one routed call, all retries and failovers included (for a
    /// stream: until its first byte; for embeddings: per sub-batch).
    pub deadline: Option<Duration>,
    /// What the route is declared to serve (`endpoints:`); every target
    /// must be able to. Empty: whatever all its targets can serve.
    pub endpoints: Vec<Endpoint>,
    /// Tokens per minute across every caller of this route.
    pub tpm: Option<u64>,
    /// How fast `least_latency` forgets a latency peak (`latency.decay`).
    pub latency_decay: Duration,
    pub hedge: Option<HedgeSpec>,
    pub affinity: Option<AffinitySpec>,
    pub fallbacks: Fallbacks,
    /// What a translated Messages or Responses request does with a feature
    /// chat cannot express (built-in tools, unknown fields): refused
    /// (default) or dropped and named in `x-switchyard-ignored`.
    pub unsupported: Unsupported,
    /// `max_tokens` for a Messages request that sent none; `None`: such a
    /// request is refused, as Anthropic does.
    pub messages_max_tokens: Option<u64>,
    /// What routing does with a stream once it carried content.
    pub stream: StreamSpec,
}

/// A route's choice for what chat cannot express (`unsupported:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unsupported {
    /// 400 naming the feature and the route.
    #[default]
    Reject,
    /// Removed, and named in the `x-switchyard-ignored` response header.
    Drop,
}

/// A route's streams after their first content (`stream_continuation`,
/// `stream_min_rate`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamSpec {
    /// A chat stream that breaks after content continues on the next
    /// target, which is asked to continue the partial answer.
    pub continuation: bool,
    /// Fewer tokens per second than this, measured over `window` after
    /// the first token, counts as a stall; `None`: no such guard.
    pub min_tokens_per_second: Option<f64>,
    pub window: Duration,
}

/// An API a route can be declared to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
    Rerank,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Rerank => "rerank",
        }
    }
}

impl RouteSpec {
    /// The largest sub-batch every target of this route accepts, so that any
    /// sub-batch can fail over to any target unchanged.
    pub fn sub_batch_size(&self) -> usize {
        self.targets
            .iter()
            .map(|t| t.max_batch_inputs)
            .min()
            .unwrap_or(1)
            .max(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// `file:line: routes.<name>.targets[i]`, for errors found later (a
    /// provider that cannot serve what the route needs).
    pub location: String,
    pub provider: String,
    /// Model name sent upstream; may hold `{model}` (the name the client
    /// asked for) and `{*}` (what the route's pattern's first `*` matched),
    /// see [`TargetSpec::model_for`].
    pub model: String,
    pub weight: u32,
    pub max_batch_inputs: usize,
    /// Tokens (prompt + output bound) the model takes; a call estimated
    /// over it skips the target.
    pub context_window: Option<u64>,
}

impl TargetSpec {
    /// The model this target is asked for when a client asked for
    /// `requested`, which selected route `route` `via` a name, alias or
    /// pattern.
    pub fn model_for(&self, route: &str, requested: &str, via: super::names::Via) -> String {
        super::names::fill_model(&self.model, route, requested, via)
    }

    /// Whether the model sent upstream depends on the requested name.
    pub fn is_templated(&self) -> bool {
        self.model.contains('{')
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySpec {
    /// Attempts per target, first try included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub jitter: bool,
    /// A Retry-After longer than this is not waited for: the target is left
    /// and the next one tried.
    pub max_retry_after: Duration,
    pub on_rate_limit: OnRateLimit,
    pub budget: BudgetSpec,
}

/// What a 429 with a Retry-After within `max_retry_after` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRateLimit {
    /// Move to the next target at once (waiting only when it is the last).
    Failover,
    /// Sleep the Retry-After and try the same target again.
    Wait,
}

/// Retry budget (as tower's): retries may add at most `ratio` of the
/// requests seen in `window`, plus `min_per_second` always.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSpec {
    pub ratio: f32,
    pub min_per_second: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteCache {
    pub enabled: bool,
    pub ttl: Duration,
    pub scope: super::access::CacheScope,
    /// How long past its TTL an entry may still answer when every target
    /// failed (`stale_if_error`), per flow; `None`: never.
    pub stale_if_error: StaleIfError,
}

/// `cache.stale_if_error`, resolved per flow: on by default for the
/// per-item flows (embeddings, rerank: deterministic answers), opt-in for
/// chat and completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StaleIfError {
    /// Chat and completions answers.
    pub chat: Option<Duration>,
    /// Embedding vectors and rerank scores.
    pub items: Option<Duration>,
}

impl StaleIfError {
    /// The longer of the two: how long expired entries are kept.
    pub fn longest(&self) -> Duration {
        self.chat.max(self.items).unwrap_or_default()
    }
}

/// A secret read from the environment. Never printed: `Debug` and `Display`
/// show a placeholder.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
