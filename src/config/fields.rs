//! Field-level checks shared by all sections: durations, rates, secrets,
//! positive counts. Each check records its error and returns a usable
//! default so validation can go on and report everything at once.
//!
//! Place in the pipeline: used by `validate` and `entries`. A check is given
//! the [`Loc`] of its field; `report` turns that into the field's own line.
//! Must not know which section it is checking.

use std::time::Duration;

use super::Env;
use super::report::{Errors, Loc};
use super::values::{RateSpec, RawRate, Secret};

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration {0:?} needs a unit (us, ms, s, m or h)")]
    NoUnit(String),
    #[error("duration {0:?} does not start with a number")]
    NoNumber(String),
    #[error("duration {0:?} has unknown unit {1:?}")]
    UnknownUnit(String, String),
    #[error("duration {0:?} is out of range")]
    OutOfRange(String),
}

/// Parses `50us`, `250ms`, `2s`, `1.5s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::NoUnit(text.to_string()))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| DurationError::NoNumber(text.to_string()))?;
    let secs = match unit.trim() {
        "us" => n / 1e6,
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(DurationError::UnknownUnit(
                text.to_string(),
                other.to_string(),
            ));
        }
    };
    if !secs.is_finite() || secs > 365.0 * 24.0 * 3600.0 {
        return Err(DurationError::OutOfRange(text.to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Reads policy fields, collecting every error (with its location) on the way.
pub(super) struct FieldReader<'a> {
    pub errors: &'a mut Errors,
    pub env: &'a Env,
}

impl FieldReader<'_> {
    pub(super) fn duration(
        &mut self,
        loc: &Loc,
        value: &Option<String>,
        default: Duration,
    ) -> Duration {
        match value {
            None => default,
            Some(text) => match parse_duration(text) {
                Ok(d) if d.is_zero() => {
                    self.errors.at(loc, "must be greater than zero");
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.errors.at(loc, e.to_string());
                    default
                }
            },
        }
    }

    /// Like [`FieldReader::duration`] but zero is allowed (a delay that may be off).
    pub(super) fn duration_or_zero(
        &mut self,
        loc: &Loc,
        value: &Option<String>,
        default: Duration,
    ) -> Duration {
        match value {
            None => default,
            Some(text) => parse_duration(text).unwrap_or_else(|e| {
                self.errors.at(loc, e.to_string());
                default
            }),
        }
    }

    pub(super) fn rate(&mut self, loc: &Loc, raw: &Option<RawRate>) -> Option<RateSpec> {
        let raw = raw.as_ref()?;
        let Some(rps) = raw.requests_per_second else {
            self.errors
                .at(&loc.field("requests_per_second"), "is required");
            return None;
        };
        if !rps.is_finite() || rps <= 0.0 || rps > 1_000_000_000.0 {
            self.errors.at(
                &loc.field("requests_per_second"),
                "must be a number greater than zero",
            );
            return None;
        }
        let burst = raw.burst.unwrap_or_else(|| rps.ceil().max(1.0) as u32);
        if burst == 0 {
            self.errors.at(&loc.field("burst"), "must be at least 1");
            return None;
        }
        Some(RateSpec {
            per_second: rps,
            burst,
        })
    }

    pub(super) fn secret(&mut self, loc: &Loc, var: &Option<String>) -> Option<Secret> {
        let var = var.as_ref()?;
        match (self.env)(var) {
            Some(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => {
                self.errors
                    .at(loc, format!("environment variable {var} is not set"));
                None
            }
        }
    }

    /// A per-minute limit (`rpm`, `tpm`): at least 1 when given.
    pub(super) fn per_minute(&mut self, loc: &Loc, value: Option<u64>) -> Option<u64> {
        match value {
            Some(0) => {
                self.errors
                    .at(loc, "must be at least 1 (leave it out for no limit)");
                None
            }
            v => v,
        }
    }

    pub(super) fn positive(&mut self, loc: &Loc, value: Option<usize>, default: usize) -> usize {
        match value {
            Some(0) => {
                self.errors.at(loc, "must be at least 1");
                default
            }
            Some(v) => v,
            None => default,
        }
    }
}
