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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: String,
    pub max_body_bytes: u64,
    pub max_concurrent_requests: usize,
    pub shutdown_grace: Duration,
    pub reload_interval: Duration,
    /// Bearer token required on /admin/*; `None` leaves admin open (bind to loopback then).
    pub admin_token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub max_bytes: u64,
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
    pub kind: ProviderKind,
    pub timeouts: Timeouts,
    pub breaker: BreakerSpec,
    pub rate_limit: Option<RateSpec>,
    pub max_batch_inputs: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    OpenAi(OpenAiSpec),
    Mock(MockSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiSpec {
    /// Base URL up to and including the version prefix, without trailing slash
    /// (`https://api.openai.com/v1`).
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MockSpec {
    pub latency: Duration,
    pub failure_rate: f64,
    pub failure_status: u16,
    pub embedding_dims: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSpec {
    pub failure_threshold: u32,
    pub open_for: Duration,
    pub half_open_probes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Failover,
    Weighted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub name: String,
    pub strategy: Strategy,
    pub targets: Vec<TargetSpec>,
    pub retry: RetrySpec,
    pub cache: RouteCache,
    pub rate_limit: Option<RateSpec>,
    pub max_concurrency: usize,
    /// Bound on one routed call, all retries and failovers included (for a
    /// stream: until its first byte; for embeddings: per sub-batch).
    pub deadline: Option<Duration>,
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
    pub provider: String,
    /// Model name sent upstream.
    pub model: String,
    pub weight: u32,
    pub max_batch_inputs: usize,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteCache {
    pub enabled: bool,
    pub ttl: Duration,
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
