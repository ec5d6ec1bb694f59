//! Routing: run one call across a route's targets.
//!
//! Place in the pipeline: below the endpoints' flows (cache, single-flight,
//! fan-out), above providers. An endpoint describes its request as a
//! [`Call`] (what a target must be able to do, a token estimate, one
//! attempt on a provider); [`execute`] orders the route's targets
//! (`strategy`), runs each target's attempt stack (`attempt`: bulkhead,
//! provider rate limit, TPM hold, breaker, metrics, adapter; built once per
//! policy generation by `table`), retries with backoff within the route's
//! retry budget, fails over, and ends with the answer or one
//! [`GatewayError`] (`outcome`). `width` tells an embeddings fan-out how wide
//! to go, from its providers' concurrency limits. Routing knows targets, not
//! endpoints: a new endpoint adds nothing here. Must not cache, parse client
//! HTTP or map errors to status codes.
//!
//! [`GatewayError`]: crate::api::GatewayError

mod attempt;
mod call;
mod lookup;
mod outcome;
mod run;
mod span;
mod strategy;
mod streams;
mod table;
pub mod tpm;
mod width;

pub use attempt::AttemptStack;
pub use call::{Attempt, Call, KeepsSlot, ReplyFacts, Served, SubBatch};
pub use lookup::Found;
pub use run::execute;
pub use strategy::target_order;
pub use streams::{Continuations, execute_stream};
pub use table::{ProviderHandle, RouteHandle, RouteTable, provider_share};
pub use width::{DEFAULT_FANOUT, fanout_width};
