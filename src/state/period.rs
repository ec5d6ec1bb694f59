//! Budget periods on the calendar (UTC): which period a moment falls in
//! (`d20261124`, `m202611`) and how long until it ends.
//!
//! Place in the pipeline: `server` names a budget counter after the period
//! id (so a new period starts a new counter) and gives it the remaining time
//! as its TTL. Calendar time, not a timer: it reads `SystemTime`, given by
//! the caller. Must not depend on a date library: the civil-date math is
//! `calendar`'s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::calendar::{civil_from_days, days_from_civil};
use crate::config::BudgetPeriod;

const DAY_SECS: u64 = 86_400;

/// The budget period `now` falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `d` + `YYYYMMDD` or `m` + `YYYYMM`, UTC.
    pub id: String,
    /// Until the period ends (the next midnight, or the first of next month).
    pub remaining: Duration,
}

/// The period of `now` (a moment before 1970 counts as 1970-01-01T00:00Z).
pub fn current(period: BudgetPeriod, now: SystemTime) -> Period {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let days = since.as_secs() / DAY_SECS;
    let (y, m, d) = civil_from_days(days);
    let (id, end_days) = match period {
        BudgetPeriod::Day => (format!("d{y:04}{m:02}{d:02}"), days + 1),
        BudgetPeriod::Month => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (format!("m{y:04}{m:02}"), days_from_civil(ny, nm, 1))
        }
    };
    let end = Duration::from_secs(end_days * DAY_SECS);
    Period {
        id,
        remaining: end.saturating_sub(since),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn check(period: BudgetPeriod, now: SystemTime, id: &str, remaining: Duration) {
        assert_eq!(
            current(period, now),
            Period {
                id: id.into(),
                remaining
            }
        );
    }

    const H: u64 = 3_600;

    #[test]
    fn an_ordinary_day_and_month() {
        let now = at(1_795_521_600); // 2026-11-24T12:00:00Z
        check(
            BudgetPeriod::Day,
            now,
            "d20261124",
            Duration::from_secs(12 * H),
        );
        check(
            BudgetPeriod::Month,
            now,
            "m202611",
            Duration::from_secs(6 * DAY_SECS + 12 * H),
        );
    }

    #[test]
    fn the_last_instant_of_a_year_and_the_first_of_the_next() {
        let last = at(1_798_761_599) + Duration::from_millis(500); // 2026-12-31T23:59:59.5Z
        check(
            BudgetPeriod::Day,
            last,
            "d20261231",
            Duration::from_millis(500),
        );
        check(
            BudgetPeriod::Month,
            last,
            "m202612",
            Duration::from_millis(500),
        );
        let first = at(1_798_761_600); // 2027-01-01T00:00:00Z
        check(
            BudgetPeriod::Day,
            first,
            "d20270101",
            Duration::from_secs(DAY_SECS),
        );
        check(
            BudgetPeriod::Month,
            first,
            "m202701",
            Duration::from_secs(31 * DAY_SECS),
        );
    }

    #[test]
    fn february_in_leap_and_common_years() {
        let leap_day = at(1_709_186_400); // 2024-02-29T06:00:00Z
        check(
            BudgetPeriod::Day,
            leap_day,
            "d20240229",
            Duration::from_secs(18 * H),
        );
        check(
            BudgetPeriod::Month,
            leap_day,
            "m202402",
            Duration::from_secs(18 * H),
        );
        // 2100 is not a leap year (divisible by 100, not by 400) ...
        let feb_2100 = at(4_105_123_200); // 2100-02-01T00:00:00Z
        check(
            BudgetPeriod::Month,
            feb_2100,
            "m210002",
            Duration::from_secs(28 * DAY_SECS),
        );
        // ... 2000 is (divisible by 400).
        let mid_feb_2000 = at(950_572_800); // 2000-02-15T00:00:00Z
        check(
            BudgetPeriod::Month,
            mid_feb_2000,
            "m200002",
            Duration::from_secs(15 * DAY_SECS),
        );
    }

    #[test]
    fn the_epoch_and_before() {
        check(
            BudgetPeriod::Day,
            at(0),
            "d19700101",
            Duration::from_secs(DAY_SECS),
        );
        let before = UNIX_EPOCH - Duration::from_secs(5);
        check(
            BudgetPeriod::Month,
            before,
            "m197001",
            Duration::from_secs(31 * DAY_SECS),
        );
    }
}
