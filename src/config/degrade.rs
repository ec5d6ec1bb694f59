//! A route's keys for failing gracefully: what happens to its streams after
//! their first content (`stream_continuation`, `stream_min_rate`) and
//! whether expired cache entries may answer when every target failed
//! (`cache.stale_if_error`).
//!
//! Place in the pipeline: read by `entries::route` while a policy is
//! validated; every error at its `file:line`. Must not know how the
//! settings are applied (`routing::streams`, `cache`, `server::flows`).

use std::time::Duration;

use super::fields::{FieldReader, parse_duration};
use super::raw::{RawRoute, Switch};
use super::report::Loc;
use super::route_spec::{StaleIfError, StreamSpec};

/// How long an embedding or rerank entry may answer past its TTL when
/// `stale_if_error` is not set: their answers are deterministic.
pub const DEFAULT_ITEMS_STALENESS: Duration = Duration::from_secs(24 * 3600);
/// The window `stream_min_rate` is measured over when none is given.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(5);

pub(super) fn stream_spec(cx: &mut FieldReader, loc: &Loc, r: &RawRoute) -> StreamSpec {
    let mut spec = StreamSpec {
        continuation: r.stream_continuation.unwrap_or(false),
        min_tokens_per_second: None,
        window: DEFAULT_RATE_WINDOW,
    };
    let Some(rate) = &r.stream_min_rate else {
        return spec;
    };
    let loc = loc.field("stream_min_rate");
    match rate.tokens_per_second {
        Some(t) if t.is_finite() && t > 0.0 && t <= 1_000_000.0 => {
            spec.min_tokens_per_second = Some(t);
        }
        Some(_) => cx.errors.at(
            &loc.field("tokens_per_second"),
            "must be a number greater than zero",
        ),
        None => cx.errors.at(&loc.field("tokens_per_second"), "is required"),
    }
    spec.window = cx.duration(&loc.field("window"), &rate.window, DEFAULT_RATE_WINDOW);
    if spec.window > Duration::from_secs(600) {
        cx.errors.at(&loc.field("window"), "must be at most 10m");
    }
    spec
}

/// `cache.stale_if_error`: unset keeps the per-flow defaults (items on for
/// a day, chat off); `false` or `off` turns it off; `true` or a duration
/// turns it on for every flow (a duration is the longest staleness).
pub(super) fn stale_if_error(
    cx: &mut FieldReader,
    loc: &Loc,
    raw: Option<&Switch>,
) -> StaleIfError {
    let both = |d: Option<Duration>| StaleIfError { chat: d, items: d };
    match raw {
        None => StaleIfError {
            chat: None,
            items: Some(DEFAULT_ITEMS_STALENESS),
        },
        Some(Switch::On(false)) => both(None),
        Some(Switch::On(true)) => both(Some(DEFAULT_ITEMS_STALENESS)),
        Some(Switch::Text(t)) if matches!(t.trim(), "off" | "false" | "no") => both(None),
        Some(Switch::Text(t)) => match parse_duration(t) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(30 * 24 * 3600) => both(Some(d)),
            Ok(d) if d.is_zero() => both(None),
            Ok(_) => {
                cx.errors.at(loc, "must be at most 30 days (720h)");
                both(None)
            }
            Err(e) => {
                cx.errors
                    .at(loc, format!("{e} (expected a duration, true or false)"));
                both(None)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::error_tests::{assert_exactly, errors};

    #[test]
    fn bad_degradation_keys_are_reported_each_at_its_line() {
        let e = errors(&[(
            "a.yaml",
            "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n\
             \x20   cache: {enabled: true, stale_if_error: soon}\n\
             \x20   stream_min_rate: {window: 0s}\n\
             \x20 s:\n    targets: [{provider: m}]\n    cache: {stale_if_error: 900h}\n\
             \x20   stream_min_rate: {tokens_per_second: -1, window: 11m}\n",
        )]);
        assert_exactly(
            &e,
            &[
                "a.yaml:7: routes.r.cache.stale_if_error: duration \"soon\" does not start with a number (expected a duration, true or false)",
                "a.yaml:8: routes.r.stream_min_rate.tokens_per_second: is required",
                "a.yaml:8: routes.r.stream_min_rate.window: must be greater than zero",
                "a.yaml:11: routes.s.cache.stale_if_error: must be at most 30 days (720h)",
                "a.yaml:12: routes.s.stream_min_rate.tokens_per_second: must be a number greater than zero",
                "a.yaml:12: routes.s.stream_min_rate.window: must be at most 10m",
            ],
        );
    }
}
