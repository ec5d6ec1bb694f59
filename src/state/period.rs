//! Budget periods on the calendar (UTC): which period a moment falls in
//! (`d20261124`, `m202611`) and how long until it ends.
//!
//! Place in the pipeline: `server` names a budget counter after the period
//! id (so a new period starts a new counter) and gives it the remaining time
//! as its TTL. Calendar time, not a timer: it reads `SystemTime`, given by
//! the caller. Must not depend on a date library: the civil-date math below
//! is Howard Hinnant's `days_from_civil` / `civil_from_days`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Days since 1970-01-01 of a (proleptic Gregorian) date from 1970 on.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
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

    #[test]
    fn day_numbers_round_trip_and_dates_advance_by_one() {
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..=200 * 366 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                [next_day, next_month, next_year].contains(&(y, m, d)),
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            assert!((28..=31).contains(&prev.2) || (y, m, d) == next_day);
            prev = (y, m, d);
        }
    }
}
