//! The store's vocabulary: what a caller asks (`Take`, `Cap`, `Adjust`,
//! `Add`), what it is told (`Admit`, `Which`) and how a call fails
//! (`StoreError`).
//!
//! Place in the pipeline: plain data shared by both backends and their
//! callers in `server`. Must not hold behaviour beyond formatting, and no
//! error may ever print the Redis URL or its password.

use std::time::Duration;

/// Take `amount` tokens from the bucket `key` (capacity `capacity`, refilled
/// at `per_minute` per 60 s), if every bucket and cap of the call allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take<'a> {
    pub key: &'a str,
    pub capacity: u64,
    pub per_minute: u64,
    pub amount: u64,
}

/// Refuse while the counter `key` is at or above `limit`; once admitted,
/// reserve `amount` on it (the request's estimated spend, added to the
/// counter until the settlement turns it into the real spend). A counter
/// this creates expires after `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap<'a> {
    pub key: &'a str,
    pub limit: u64,
    pub amount: u64,
    pub ttl: Duration,
}

/// After the answer: take `delta` more tokens from the bucket `key`
/// (negative: give them back, never above capacity; the level may go below
/// zero and refills from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjust<'a> {
    pub key: &'a str,
    pub capacity: u64,
    pub per_minute: u64,
    pub delta: i64,
}

/// Add `amount` to the counter `key` (negative: give back part of what
/// admission reserved; never below zero, and a counter that is gone stays
/// gone); a counter that does not exist yet is created expiring after
/// `ttl` (later adds keep that expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Add<'a> {
    pub key: &'a str,
    pub amount: i64,
    pub ttl: Duration,
}

/// The answer of [`super::Store::admit`]. Granted, every cap's amount was
/// reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Every cap allowed and every bucket's amount was taken.
    Granted,
    /// Nothing was taken.
    Refused {
        which: Which,
        /// For a bucket: how long until it would hold the amount (`None`:
        /// never, the amount exceeds its capacity or it does not refill).
        /// For a cap: `None` (it reopens when its counter expires).
        wait: Option<Duration>,
    },
}

/// What refused an admission: the index into the call's `takes` or `caps`.
/// A reached cap is reported first; otherwise the refused take with the
/// longest wait (the time until every bucket fits at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Take(usize),
    Cap(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The shared store did not answer (in time); with `on_error:
    /// fail_closed` the request is refused (503 `state_unavailable`).
    #[error("shared state store unavailable: {0}")]
    Unavailable(Unavailable),
    /// `state.url` is not a usable Redis URL. The reason is written here,
    /// never copied from the URL.
    #[error("state store URL: {0}")]
    BadUrl(&'static str),
    /// The Redis store starts its connection task on the current runtime.
    #[error("the Redis state store must be created inside a tokio runtime")]
    NoRuntime,
}

/// Why a round trip to Redis failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("not connected (reconnecting in the background)")]
    NotConnected,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The client's or server's error text (it never holds the URL).
    #[error("{0}")]
    Redis(String),
    #[error("unexpected reply to {0}")]
    Reply(&'static str),
}
