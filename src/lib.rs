//! Switchyard: a resilient, multi-provider, OpenAI-compatible gateway.
//!
//! Module map, in pipeline order (dependencies point down this list only):
//! `server` (accept loop, assembly, HTTP error mapping) -> `fanout`, `cache`
//! -> `routing` -> `resilience`, `providers` -> `api` -> `config`, `metrics`
//! (leaves).

pub mod api;
pub mod cache;
pub mod config;
pub mod fanout;
pub mod metrics;
pub mod providers;
pub mod resilience;
pub mod routing;
pub mod server;
