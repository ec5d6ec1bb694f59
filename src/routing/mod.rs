//! Routing: run one call across a route's targets.
//!
//! Place in the pipeline: below the endpoints' flows (cache, single-flight,
//! fan-out), above providers. An endpoint describes its request as a
//! [`Call`] (what a target must be able to do, a token estimate, one
//! attempt on a provider); [`execute`] plans the call (`plan`: usable
//! targets ordered by the route's `strategy`, prompt-cache `affinity`,
//! fallbacks by error class), runs each target's attempt stack (`attempt`:
//! bulkhead, provider rate limit, TPM hold, breaker, measure (`live`),
//! metrics, adapter; built once per policy generation by `table`), hedges
//! the first attempt when the route says so (`hedged`), retries with
//! backoff within the route's retry budget, fails over, and ends with the
//! answer or one [`GatewayError`] (`outcome`); a stream broken after its
//! content is continued on another target (`streams`). `lookup` resolves a
//! requested model name (exact, alias, pattern) to a route; `span` is the
//! attempt's trace span. A key allowed to may override a route's strategy
//! or targets per request (`overrides`).
//! `width` tells an embeddings fan-out how wide to go, from its providers'
//! concurrency limits. Routing knows targets, not endpoints: a new endpoint adds
//! nothing here. Must not cache, parse client HTTP or map errors to status
//! codes.
//!
//! [`GatewayError`]: crate::api::GatewayError

pub mod affinity;
mod attempt;
mod call;
mod hedged;
pub mod live;
mod lookup;
mod outcome;
mod overrides;
mod plan;
mod provider_watch;
mod reply;
mod run;
mod span;
pub mod strategy;
mod streams;
mod table;
pub mod tpm;
mod width;

#[cfg(test)]
mod strategy_tests;

pub use attempt::AttemptStack;
pub use call::{Attempt, Call, Pace, Served, SubBatch};
pub use lookup::Found;
pub use overrides::OverrideError;
pub use reply::{KeepsSlot, Reply, ReplyFacts, UsageSeen, watch_chat_usage};
pub use run::execute;
pub use streams::{Continuations, execute_stream};
pub use table::{ProviderHandle, RouteHandle, RouteTable, provider_share};
pub use width::{DEFAULT_FANOUT, fanout_width};
