//! Raw policy types: exactly what a YAML file may say, nothing more.
//!
//! Place in the pipeline: the target of `shape`, which reads each file's node
//! tree into these types (reporting unknown keys against the field lists serde
//! derives here, and the line of every key). Everything is optional or a plain
//! string here; meaning (durations, defaults, cross references) is given by
//! `validate`. Must not hold defaults or logic; `deny_unknown_fields` documents
//! (and, read any other way, enforces) that typos are errors, never ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::values::RawRate;

/// One policy file. Several files are merged; each section may come from any file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub server: Option<RawServer>,
    #[serde(default)]
    pub cache: Option<RawCache>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub routes: BTreeMap<String, RawRoute>,
    #[serde(default)]
    pub keys: BTreeMap<String, RawKey>,
    #[serde(default)]
    pub prices: BTreeMap<String, RawPrice>,
    #[serde(default)]
    pub state: Option<RawState>,
    #[serde(default)]
    pub tracing: Option<RawTracing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracing {
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub secret_hash: Option<String>,
    pub secret_env: Option<String>,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget: Option<RawKeyBudget>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What this key's requests may override per request (`strategy`, `targets`).
    pub overrides: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyBudget {
    pub period: Option<String>,
    pub tokens: Option<u64>,
    pub usd: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrice {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cached: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub backend: Option<String>,
    pub url_env: Option<String>,
    pub on_error: Option<String>,
    pub timeout: Option<String>,
    pub prefix: Option<String>,
    pub tls: Option<RawRedisTls>,
    pub sentinel: Option<RawSentinel>,
    pub cluster: Option<RawCluster>,
    pub responses: Option<RawResponsesStore>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedisTls {
    pub ca_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSentinel {
    pub master: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub password_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub nodes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResponsesStore {
    pub ttl: Option<String>,
    pub max_bytes: Option<u64>,
    pub max_entry_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub max_concurrent_requests: Option<usize>,
    pub provider_share: Option<f64>,
    pub shutdown_grace: Option<String>,
    pub reload_interval: Option<String>,
    pub admin_token_env: Option<String>,
    pub drain_delay: Option<String>,
    pub auth: Option<String>,
    pub connections: Option<RawConnections>,
    pub cors: Option<RawCors>,
    pub compression: Option<super::compression::RawCompression>,
    pub dashboard: Option<super::dashboard::RawDashboard>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_headers: Option<Vec<String>>,
    pub max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnections {
    pub max: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub first_request_timeout: Option<String>,
    pub max_per_peer: Option<usize>,
    pub loopback_exempt: Option<bool>,
    pub http2_keep_alive_interval: Option<String>,
    pub http2_keep_alive_timeout: Option<String>,
    pub http2_max_concurrent_streams: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub max_bytes: Option<u64>,
    pub max_entry_bytes: Option<u64>,
    pub default_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub per_client: Option<RawRate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub kind: Option<String>,
    // The keys every kind shares; the kind's own keys are in `settings`.
    pub timeouts: Option<RawTimeouts>,
    pub breaker: Option<RawBreaker>,
    pub rate_limit: Option<RawRate>,
    pub max_batch_inputs: Option<usize>,
    pub max_response_bytes: Option<u64>,
    pub tpm: Option<u64>,
    pub concurrency: Option<RawConcurrency>,
    /// Kind-specific keys, split off before this struct is read.
    #[serde(skip)]
    pub settings: super::kind::KindSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConcurrency {
    pub max_in_flight: Option<usize>,
    pub adaptive: Option<RawAdaptive>,
    pub max_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdaptive {
    pub min: Option<usize>,
    pub max: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub connect: Option<String>,
    pub first_byte: Option<String>,
    pub idle: Option<String>,
    pub body: Option<String>,
    pub total: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreaker {
    pub failure_threshold: Option<u32>,
    pub open_for: Option<String>,
    pub half_open_probes: Option<u32>,
    pub count_rate_limits: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub strategy: Option<String>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    pub retry: Option<RawRetry>,
    pub cache: Option<RawRouteCache>,
    pub rate_limit: Option<RawRate>,
    pub fanout: Option<RawFanout>,
    pub deadline: Option<String>,
    pub endpoints: Option<Vec<String>>,
    pub tpm: Option<u64>,
    /// Glob patterns of requested model names this route also serves.
    #[serde(rename = "match")]
    pub patterns: Option<Vec<String>>,
    /// Other exact names this route serves.
    pub aliases: Option<Vec<String>>,
    pub unsupported: Option<String>,
    pub messages: Option<RawRouteMessages>,
    pub stream_continuation: Option<bool>,
    pub stream_min_rate: Option<RawStreamRate>,
    pub latency: Option<RawLatency>,
    pub hedge: Option<RawHedge>,
    pub affinity: Option<RawAffinity>,
    pub fallbacks: Option<RawFallbacks>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteMessages {
    pub default_max_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLatency {
    pub decay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHedge {
    /// A duration (`150ms`) or a percentile of the target's latency (`p95`).
    pub delay: Option<String>,
    pub max_per_second: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAffinity {
    pub by: Option<String>,
    pub header: Option<String>,
    pub messages: Option<usize>,
    pub ttl: Option<String>,
    pub max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFallbacks {
    pub context_window: Option<RawFallback>,
    pub content_policy: Option<RawFallback>,
    pub quota: Option<RawFallback>,
}

/// Another route's targets (`route`) or a list of its own (`targets`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFallback {
    pub route: Option<String>,
    pub targets: Option<Vec<RawTarget>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStreamRate {
    pub tokens_per_second: Option<f64>,
    pub window: Option<String>,
}

/// `true`, `false`, or a text (a duration, `off`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Switch {
    On(bool),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub weight: Option<u32>,
    pub max_batch_inputs: Option<usize>,
    pub context_window: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub max_attempts: Option<u32>,
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub jitter: Option<bool>,
    pub max_retry_after: Option<String>,
    pub on_rate_limit: Option<String>,
    pub budget: Option<RawBudget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    pub ratio: Option<f32>,
    pub min_per_second: Option<u32>,
    pub window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteCache {
    pub enabled: Option<bool>,
    pub ttl: Option<String>,
    pub scope: Option<String>,
    pub stale_if_error: Option<Switch>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFanout {
    pub max_concurrency: Option<usize>,
}
