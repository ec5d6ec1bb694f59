//! The leaf values a policy's fields hold: a secret, a rate (and the raw
//! form a rate is written in).
//!
//! Place in the pipeline: made by the field readers (`fields`) while a
//! policy is validated, held by the policy's settings. Must not import any
//! other file of `config` (every type of the policy may hold these), and a
//! secret must never be printed.

use std::fmt;

use serde::Deserialize;

/// A rate as a policy file writes it (`rate_limit:`, `limits.per_client:`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    pub requests_per_second: Option<f64>,
    pub burst: Option<u32>,
}

/// A token-bucket rate: sustained `per_second`, bursts up to `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSpec {
    pub per_second: f64,
    pub burst: u32,
}

/// A secret read from the environment. Never printed: `Debug` and `Display`
/// show a placeholder.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
