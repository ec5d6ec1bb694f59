//! The validated, immutable policy: what the gateway actually runs on.
//!
//! Place in the pipeline: produced by `validate`, consumed by everything that
//! is built from configuration (routing tables, limiters, breakers, cache).
//! Every field has its final value: defaults are applied, durations parsed,
//! references checked. Must not be mutated after construction; a reload makes
//! a new `Policy` and swaps it in.

use std::collections::BTreeMap;
use std::time::Duration;

use super::route_spec::RouteSpec;
use super::values::{RateSpec, Secret};

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
