//! Access control and accounting: who is calling, what they may call, the
//! limits and budgets they are under, and what their answers spent.
//!
//! Place in the pipeline: between the edge and the endpoints' flows. `admin`
//! checks the admin token (reload, the live page); `keys`
//! identifies the caller when the request context is made; `allow` refuses
//! unknown callers and routes outside their key; `overrides` applies the
//! per-request routing headers the key allows; `admission` checks every
//! limit and budget in one call before routing and leaves a `settlement`
//! in the context; `usage` reads what each answer spent, and `account`
//! (at the edge) settles it once when the response ends. Must not route,
//! cache or talk to upstreams.

pub(crate) mod admin;
pub(crate) mod admission;
pub(crate) mod allow;
pub(crate) mod keys;
pub(crate) mod overrides;
pub(crate) mod settlement;
pub(crate) mod usage;
