//! The edge: everything between a client's socket and the router.
//!
//! Place in the pipeline: the outermost part of `server`. `accept` owns
//! client connections (limits, per-peer caps with `peers`, timeouts,
//! drain); `stack` assembles the edge tower layers once (request id, trace span, accounting, catch-panic, CORS,
//! compression (`compress`), decompression (`decompress`; the answer's body
//! between them is an `answer::Answer`), then the health bypass, load shed and
//! concurrency limit in front of the router); `context` is the one request
//! context, made by `account` and read by it once at the end (`trace` writes
//! its span's attributes then, when tracing is on; `access_line` its log
//! line, once the connection has sent the answer); `busy_poll` keeps the
//! runtime polling sockets for a moment after a request starts or ends
//! instead of sleeping. Must not
//! contain endpoint logic.

pub(super) mod accept;
mod access_line;
mod account;
mod answer;
pub(crate) mod busy_poll;
mod catch_panic;
pub(crate) mod compress;
mod conn;
pub(crate) mod context;
pub(crate) mod cors;
mod decompress;
pub(crate) mod limit;
mod peers;
pub(crate) mod permit;
mod request_id;
mod span;
mod stack;
#[cfg(test)]
mod stack_tests;
mod trace;
