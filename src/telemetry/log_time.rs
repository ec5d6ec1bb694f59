//! The text log line's timestamp: what tracing-subscriber's `SystemTime`
//! writes (`2026-12-05T15:31:00.123456Z`, UTC, microseconds), with the
//! date and time of day worked out once a second instead of per line.
//!
//! Place in the pipeline: the timer of the text log layer (`logs`), run for
//! every line on the thread that logs it. Each thread keeps the text of the
//! last second it wrote; a line in that second writes it and the
//! microseconds. Must not change what a line says: a test compares it with
//! tracing-subscriber's own timer.

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::calendar::civil_from_days;

/// `SystemTime`'s format, the text of the second kept per thread.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogTime;

thread_local! {
    /// The second last written (seconds since the epoch) and its text up to
    /// the seconds (`2026-12-05T15:31:00`).
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for LogTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now();
        let Ok(since) = now.duration_since(UNIX_EPOCH) else {
            // Before 1970: not worth a fast path.
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = since.as_secs();
        let mut micros = itoa::Buffer::new();
        let micros = micros.format(since.subsec_micros());
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != secs {
                text.clear();
                write_second(text, secs)?;
                *second = secs;
            }
            w.write_str(text)?;
            w.write_char('.')?;
            for _ in micros.len()..6 {
                w.write_char('0')?;
            }
            w.write_str(micros)?;
            w.write_char('Z')
        })
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS` (years past 9999 as
/// `+YYYYY`, as tracing-subscriber does).
fn write_second(out: &mut impl fmt::Write, secs: u64) -> fmt::Result {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        write!(out, "+{year}")?;
    } else {
        write!(out, "{year:04}")?;
    }
    write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(secs: u64) -> String {
        let mut s = String::new();
        write_second(&mut s, secs).unwrap();
        s
    }

    #[test]
    fn known_seconds() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (951_868_799, "2000-02-29T23:59:59"),
            (951_868_800, "2000-03-01T00:00:00"),
            (1_709_164_800, "2024-02-29T00:00:00"),
            (1_764_892_800, "2025-12-05T00:00:00"),
            (4_102_444_799, "2099-12-31T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
            (253_402_300_799, "9999-12-31T23:59:59"),
            (253_402_300_800, "+10000-01-01T00:00:00"),
        ] {
            assert_eq!(second(secs), text, "{secs}");
        }
    }

    /// The same text as tracing-subscriber's timer, now (tried again if a
    /// second turned between the two).
    #[test]
    fn the_same_as_tracing_subscribers_timer() {
        for _ in 0..100 {
            let mut ours = String::new();
            let mut theirs = String::new();
            LogTime.format_time(&mut Writer::new(&mut ours)).unwrap();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
            // Down to the second (the microseconds differ between the calls).
            if ours[..19] == theirs[..19] {
                assert_eq!(&ours[19..20], ".");
                assert!(ours[20..26].bytes().all(|b| b.is_ascii_digit()), "{ours}");
                assert_eq!(&ours[26..], "Z");
                return;
            }
        }
        panic!("the second turned a hundred times in a row");
    }
}
