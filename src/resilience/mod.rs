//! Resilience primitives: retry decisions and budgets, circuit breakers,
//! rate limits, concurrency limits (bulkheads, fixed or adaptive), latency
//! estimates, power of two choices, hedging, and the retry hints that
//! spread a burst of refusals.
//!
//! Place in the pipeline: used by `routing` (retry, breaker, provider limit,
//! bulkhead, latency-aware choice, hedged attempts) and `server` (client and
//! route limits). Each primitive is built from a
//! policy spec and knows nothing of HTTP or providers. All timing uses
//! `tokio::time`, so tests can run them with paused time. Must not hold
//! global state: every gateway builds its own.

pub mod backlog;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod concurrency;
pub mod hedge;
pub mod latency;
pub mod layers;
pub mod p2c;
pub mod rate_limit;
pub mod retry;

pub use backlog::Backlog;
pub use breaker::{Breaker, BreakerPermit, BreakerState};
pub use budget::RetryBudget;
pub use concurrency::{ConcurrencyLimit, Refused, Signal, Slot};
pub use rate_limit::{KeyedLimiter, Limiter};
pub use retry::{Decision, RetryHint, Why, decide};
