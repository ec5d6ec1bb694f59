//! The text format's line around the fields: timestamp, level, the spans
//! the event is in, its target; byte for byte what tracing-subscriber's
//! `Full` format writes without colours, written piece by piece instead of
//! through `write!` (which ran the formatting machinery five or more times
//! a line: the level, each span's name, braces and colon, the target).
//!
//! Place in the pipeline: the text log layer's event format (`logs`); the
//! fields themselves are `text_fields`'. A span whose fields are kept as
//! a `SpanText` beside it has that text written in its braces; a line
//! inside a request whose span is that text alone (`request_scope`'s
//! slot, where `span_text` applies) has it written as its root span
//! `request{…}:`. With colours on, and for records that came through the
//! `log` crate (whose metadata `Full` normalises), it hands the line to
//! `Full` itself, which knows no slot: such a record inside a request
//! shows no request span (nothing in the gateway logs through `log` at
//! `info` or above). Must not change a byte of a line.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::request_scope::current_text;
use super::span_text::{REQUEST, SpanText};

/// `Full` without colours, with `timer`'s timestamps.
pub(super) struct TextEvent<T> {
    timer: T,
    full: Format<Full, T>,
}

impl<T: FormatTime + Clone> TextEvent<T> {
    pub(super) fn new(timer: T) -> Self {
        TextEvent {
            full: Format::default().with_timer(timer.clone()),
            timer,
        }
    }
}

/// The level as `Full` pads it.
pub(super) fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// `name{fields}:` for one span of a line's scope: its fields as the
/// layer formatted them (`N`), else its [`SpanText`], else no braces.
pub(super) fn span_part<R, N>(out: &mut impl fmt::Write, span: &SpanRef<'_, R>) -> fmt::Result
where
    R: for<'a> LookupSpan<'a>,
    N: 'static,
{
    out.write_str(span.name())?;
    let ext = span.extensions();
    if let Some(fields) = ext.get::<FormattedFields<N>>()
        && !fields.is_empty()
    {
        out.write_char('{')?;
        out.write_str(fields)?;
        out.write_char('}')?;
    } else if let Some(text) = ext.get::<SpanText>() {
        text.write_braced(out)?;
    }
    out.write_char(':')
}

impl<S, N, T> FormatEvent<S, N> for TextEvent<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if writer.has_ansi_escapes() || meta.fields().field("log.target").is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_char(' ')?;
        writer.write_str(level(meta.level()))?;
        writer.write_char(' ')?;
        // A line in a request whose span is its text alone (entered in
        // the request scope's slot) has it as its root span; a line with a
        // parent of its own is not in the request's scope.
        let mut seen = false;
        if event.is_contextual()
            && let Some(text) = current_text()
        {
            writer.write_str(REQUEST)?;
            text.write_braced(&mut writer)?;
            writer.write_char(':')?;
            seen = true;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                span_part::<_, N>(&mut writer, &span)?;
                seen = true;
            }
        }
        if seen {
            writer.write_char(' ')?;
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::test_sink::Sink;
    use crate::telemetry::text_fields::TextFields;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    /// A fixed timestamp, so that two layers write the same line.
    #[derive(Clone)]
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-05T18:00:00.000000Z")
        }
    }

    /// The lines a run of events gives through `format`.
    fn lines<E>(format: E) -> String
    where
        E: for<'w> FormatEvent<tracing_subscriber::Registry, TextFields> + Send + Sync + 'static,
    {
        let sink = Sink::default();
        let out = sink.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(TextFields)
            .event_format(format)
            .with_writer(move || out.clone())
            .boxed();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("outside any span");
            let outer = tracing::info_span!("request", id = %"r-1", path = "/v1/x", n = 3u64);
            let _o = outer.enter();
            tracing::info!(target: "switchyard::access", method = %"POST", status = 200u16, "done");
            let empty = tracing::debug_span!("empty");
            let _e = empty.enter();
            tracing::error!(error = "it's \"quoted\"", "failed");
            let inner = tracing::info_span!("attempt", provider = "p", otel.kind = "client");
            let _i = inner.enter();
            tracing::trace!(k = true, "deep");
            tracing::debug!(target: "other::place", x = -1i64);
            tracing::info!("");
        });
        sink.text()
    }

    #[test]
    fn lines_are_byte_for_byte_those_of_the_full_format() {
        let ours = lines(TextEvent::new(Fixed));
        let full = lines(Format::default().with_timer(Fixed));
        assert_eq!(ours, full);
        // Every level and every span shape was written.
        for part in [
            "WARN",
            " INFO",
            "ERROR",
            "TRACE",
            "DEBUG",
            "request{",
            "}:empty:attempt{",
            "other::place: ",
        ] {
            assert!(ours.contains(part), "{part} missing from:\n{ours}");
        }
        assert_eq!(ours.lines().count(), 6, "{ours}");
    }
}
