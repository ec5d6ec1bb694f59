//! The validated route: its targets, strategy, retries, fallbacks, cache
//! and stream settings, as the policy holds them.
//!
//! Place in the pipeline: part of [`super::Policy`] (its `routes`), made by
//! `validate`, read by `routing` when it builds a route's table. Every field
//! has its final value. Must not be mutated after construction.

use std::time::Duration;

use super::values::RateSpec;

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
