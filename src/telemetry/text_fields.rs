//! The text log format's fields: what tracing-subscriber's default visitor
//! writes, byte for byte, without its formatting machinery for the common
//! fields.
//!
//! Place in the pipeline: the `fmt_fields` of the text log layer
//! (`logs`), run for every event and span on the thread that logs it. The
//! access line has some twenty fields; formatted through `Debug` they cost
//! about 4 % of a chat request's CPU. A plain string (printable ASCII, no
//! quote or backslash), an integer or a boolean is written directly, in
//! exactly the form `Debug` gives it, and any other value (a `%display` or
//! `?debug` one) as `name=` and its `Debug`, as the default visitor does
//! without colours; the rest (a message, a string that needs escaping,
//! colours on a terminal) goes to the default visitor. Fields that only
//! shape exported spans (`otel.*`) are left out. Must not change what a
//! line says: a test compares every kind of field with the default
//! visitor's output.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// Fields that only shape exported spans (`otel.name`, `otel.kind`, ...).
pub(super) fn for_spans_only(field: &Field) -> bool {
    field.name().starts_with("otel.")
}

/// Forwards every field but [`for_spans_only`] ones.
struct Skip<V>(V);

impl<V: Visit> Visit for Skip<V> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !for_spans_only(field) {
            self.0.record_debug(field, value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if !for_spans_only(field) {
            self.0.record_str(field, value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !for_spans_only(field) {
            self.0.record_i64(field, value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !for_spans_only(field) {
            self.0.record_u64(field, value);
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if !for_spans_only(field) {
            self.0.record_bool(field, value);
        }
    }
}

/// The text format's fields, less [`for_spans_only`] ones.
pub(super) struct TextFields;

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            let mut v = Skip(DefaultVisitor::new(writer, true));
            fields.record(&mut v);
            return v.0.finish();
        }
        let mut v = Plain::new(writer, true);
        fields.record(&mut v);
        v.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let empty = current.fields.is_empty();
        let writer = current.as_writer();
        if writer.has_ansi_escapes() {
            let mut v = Skip(DefaultVisitor::new(writer, empty));
            fields.record(&mut v);
            return v.0.finish();
        }
        let mut v = Plain::new(writer, empty);
        fields.record(&mut v);
        v.result
    }
}

/// Writes `name=value` fields separated by spaces, as [`DefaultVisitor`]
/// does without colours.
struct Plain<'w> {
    writer: Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl<'w> Plain<'w> {
    fn new(writer: Writer<'w>, empty: bool) -> Self {
        Plain {
            writer,
            empty,
            result: Ok(()),
        }
    }

    /// Whether `field` can be written here (else the default visitor does).
    fn direct(&self, field: &Field) -> bool {
        let name = field.name();
        self.result.is_ok()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    /// ` name=` then `value`.
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'w>) -> fmt::Result) {
        self.write_after(field, "=", value);
    }

    /// ` name`, `equals` (`=`, or `="` before a quoted value: one write
    /// fewer), then `value`.
    fn write_after(
        &mut self,
        field: &Field,
        equals: &str,
        value: impl FnOnce(&mut Writer<'w>) -> fmt::Result,
    ) {
        let pad = if self.empty {
            self.empty = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        };
        self.result = pad
            .and_then(|()| self.writer.write_str(field.name()))
            .and_then(|()| self.writer.write_str(equals))
            .and_then(|()| value(&mut self.writer));
    }

    /// The default visitor's way, continuing this line.
    fn fallback(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.empty);
        record(&mut v);
        self.empty = false;
        self.result = v.finish();
    }
}

/// Whether `Debug` writes `s` as itself between quotes: printable ASCII
/// without `"` or `\`. Eight bytes at a time (each test below is the
/// usual exact "some byte is zero / below n" word trick).
pub(super) fn plain(s: &str) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let not_plain = |w: u64| {
        zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | zero(w ^ (ONES * 0x7f))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
            | (w & HIGH)
    };
    let (words, rest) = s.as_bytes().as_chunks::<8>();
    words.iter().all(|w| not_plain(u64::from_le_bytes(*w)) == 0)
        && rest
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Plain<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if for_spans_only(field) {
            return;
        }
        if self.direct(field) && plain(value) {
            self.write_after(field, "=\"", |w| {
                w.write_str(value)?;
                w.write_char('"')
            });
        } else {
            self.fallback(|v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if for_spans_only(field) {
            return;
        }
        if self.direct(field) {
            self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
        } else {
            self.fallback(|v| v.record_u64(field, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if for_spans_only(field) {
            return;
        }
        if self.direct(field) {
            self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
        } else {
            self.fallback(|v| v.record_i64(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if for_spans_only(field) {
            return;
        }
        if self.direct(field) {
            self.write(field, |w| w.write_str(if value { "true" } else { "false" }));
        } else {
            self.fallback(|v| v.record_bool(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if for_spans_only(field) {
            return;
        }
        if self.direct(field) {
            // What the default visitor writes for it, less its colours
            // (off here): `name=` and the value's `Debug`, which for a
            // `%value` field is its `Display`.
            self.write(field, |w| write!(w, "{value:?}"));
        } else {
            self.fallback(|v| v.record_debug(field, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::telemetry::test_sink::Sink;

    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// The same events through `fields`; the text of the lines.
    fn lines<F>(fields: F) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let sink = Sink::default();
        let out = sink.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .with_writer(move || out.clone())
            .boxed();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", id = "r-1", n = 3u64);
            let _in = span.enter();
            for s in [
                "plain text",
                "",
                "quote \" in",
                "back\\slash",
                "tab\tnew\nline",
                "é ü",
                "\u{1b}[31m",
                "it's",
            ] {
                tracing::info!(
                    method = %"POST",
                    path = s,
                    status = 200u16,
                    ms = 0u64,
                    big = u64::MAX,
                    neg = -5i64,
                    ok = true,
                    no = false,
                    r#type = "t",
                    dbg = ?Some(s),
                    "done {s}"
                );
                tracing::info!(path = s);
            }
        });
        sink.text()
    }

    /// The default visitor (what [`TextFields`] must match).
    struct Default_;

    impl<'w> FormatFields<'w> for Default_ {
        fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
            let mut v = DefaultVisitor::new(writer, true);
            fields.record(&mut v);
            v.finish()
        }
    }

    #[test]
    fn lines_are_what_the_default_visitor_writes() {
        let fast = lines(TextFields);
        let slow = lines(Default_);
        assert!(fast.contains("path=\"plain text\""), "{fast}");
        assert!(fast.contains("request{id=\"r-1\" n=3}"), "{fast}");
        assert_eq!(fast.matches(": done ").count(), 8, "{fast}");
        for (f, s) in fast.lines().zip(slow.lines()) {
            assert_eq!(f, s);
        }
        assert_eq!(fast, slow);
    }

    #[test]
    fn plain_strings_are_ones_debug_writes_as_they_are() {
        for s in [
            "abc",
            "a b",
            "~!@#$%^&*()",
            "it's",
            "",
            "x\"",
            "\\",
            "\t",
            "\u{7f}",
        ] {
            assert_eq!(plain(s), format!("{s:?}") == format!("\"{s}\""), "{s:?}");
        }
        // Not ASCII: left to `Debug` (which may or may not escape it).
        assert!(!plain("é"));
        // Every byte at every place of a longer string (the word path).
        for at in 0..19 {
            for b in 0u8..=0x7f {
                let mut bytes = *b"abcdefghijklmnopqrs";
                bytes[at] = b;
                let s = std::str::from_utf8(&bytes).unwrap();
                assert_eq!(plain(s), format!("{s:?}") == format!("\"{s}\""), "{s:?}");
            }
            let mut t = String::from("abcdefghijklmnopqrs");
            t.replace_range(at..at + 1, "é");
            assert!(!plain(&t), "{t:?}");
        }
    }
}
