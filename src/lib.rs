//! Switchyard: a resilient, multi-provider, OpenAI-compatible gateway.
//!
//! Module map, in pipeline order (dependencies point down this list only):
//! `server` (accept loop, the edge stack, per-request context, the one place
//! errors become HTTP) -> `fanout`, `cache` -> `routing` (order, retry,
//! failover; the per-target attempt stack) -> `resilience` (retry decisions,
//! budget, breaker, limits, tower layers), `state` (buckets, budget counters
//! and the shared cache: in memory or in Redis), `providers` (one kind per file,
//! behind the `Provider` trait) -> `api` (wire formats, error envelope) ->
//! `config`, `metrics` (leaves). Beside them, `telemetry` (log lines, OTLP
//! trace export, W3C trace context) is set up once by the binary; the rest
//! only asks it whether tracing is on and how conventions name things.
//! `boxed` (futures boxed in place) and `on_wake` (a future polled only on
//! its own wake-ups) are leaves any of them may use.
//!
//! Error policy:
//! - Module boundaries return `thiserror` enums (`ConfigErrors`,
//!   `UpstreamError`, `TranslateError`, `BuildError`, `DurationError`, ...),
//!   never `String` or boxed errors; hot paths never box an error.
//! - A client-facing failure is one `api::GatewayError`: its `ErrorKind` says
//!   what happened, its message is safe to show (no secrets: upstream bodies
//!   are scrubbed before they are kept, and messages are written from policy
//!   names, never from header values).
//! - Only `server::http` turns a `GatewayError` into HTTP (status, headers,
//!   OpenAI envelope, or Anthropic's on `/v1/messages`) or into an SSE error
//!   event; nothing below `server`
//!   knows status codes it did not receive from an upstream.
//! - Nothing panics on input: client bodies, upstream bodies, policy files.
//!   A panic that escapes anyway is answered with a 500 envelope at the edge.
//! - Policy errors are all collected, each with `file:line: path`, and the
//!   running policy stays.

#![forbid(unsafe_code)]
#![warn(unreachable_pub, missing_debug_implementations)]

pub mod api;
mod boxed;
pub mod cache;
mod calendar;
pub mod config;
pub mod fanout;
mod gather;
pub mod metrics;
mod on_wake;
pub mod providers;
pub mod resilience;
pub mod routing;
pub mod server;
pub mod state;
pub mod telemetry;
