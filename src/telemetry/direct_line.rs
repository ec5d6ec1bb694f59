//! Text lines written straight into the log writer, for the one line every
//! request writes (the access line), byte for byte what the text log layer
//! would write for the same event.
//!
//! Place in the pipeline: beside the text log layer (`logs`), sharing its
//! writer (`log_writer`) and the span fields it formatted. Through the
//! layer, the access line cost about 9,000 instructions of a 1 KB chat
//! request's 99,000: tracing's dispatch, the visit of each of its twenty
//! fields through `dyn` calls, and some seventy small writes through a
//! `dyn fmt::Write`. Here its fields are appended to one buffer. Installed
//! by `init` only where that is exact: text lines without colours, and no
//! trace export (whose layer takes events too). The caller asks the log
//! filter first (`enabled!`), as it would for the event. Must not decide
//! what a line says: a test holds both ways to the same bytes.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::OnceLock;

use tracing::{Level, Span};
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::registry::LookupSpan;

use super::log_time::LogTime;
use super::log_writer::Lines;
use super::span_text::SpanText;
use super::text_event::{level, span_part};
use super::text_fields::{TextFields, plain};

/// The process's direct text output, when `init` installed one. Like the
/// subscriber it mirrors, it is process-wide.
static DIRECT: OnceLock<DirectText<Lines, LogTime>> = OnceLock::new();

/// Where lines may be written directly: `None` unless the process logs
/// text without colours and exports no traces (and in tests without
/// `init`, whose subscribers are their own).
#[inline]
pub(crate) fn direct_text() -> Option<&'static DirectText<Lines, LogTime>> {
    DIRECT.get()
}

/// Installs the process's direct output (once; `init` calls it).
pub(super) fn install(out: Lines) {
    let _ = DIRECT.set(DirectText::new(out, LogTime));
}

/// Writes whole text lines to `out`, with `timer`'s timestamps.
pub(crate) struct DirectText<W, T> {
    out: W,
    timer: T,
}

thread_local! {
    /// The line being written (kept, so a line allocates nothing).
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<W: Write + Clone, T: FormatTime> DirectText<W, T> {
    pub(super) fn new(out: W, timer: T) -> Self {
        DirectText { out, timer }
    }

    /// One line at `level` for `target` in `span` (and its parents), with
    /// the fields `fields` appends: what the text layer writes for an event
    /// with `parent: span`.
    pub(crate) fn line(
        &self,
        level_: &Level,
        target: &str,
        span: InSpan<'_>,
        fields: impl FnOnce(&mut TextFieldsOut<'_>),
    ) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            if self.timer.format_time(&mut Writer::new(line)).is_err() {
                line.push_str("<unknown time>");
            }
            line.push(' ');
            line.push_str(level(level_));
            line.push(' ');
            match span {
                InSpan::Span(span) => spans(line, span),
                InSpan::Root(name, text) => {
                    line.push_str(name);
                    let _ = text.write_braced(line);
                    line.push_str(": ");
                }
            }
            line.push_str(target);
            line.push_str(": ");
            fields(&mut TextFieldsOut { line, empty: true });
            line.push('\n');
            let _ = self.out.clone().write_all(line.as_bytes());
        });
    }
}

/// The span a line is written in.
#[derive(Clone, Copy)]
pub(crate) enum InSpan<'a> {
    /// A span of the registry's (or none: `Span::none()`).
    Span(&'a Span),
    /// A root span named `.0` whose fields are the text `.1` (a request's
    /// span, where `span_text` applies): written without a registry lookup.
    Root(&'static str, &'a SpanText),
}

/// `name{fields}:` for `span` and each of its parents, root first, then a
/// space, as the text layer writes them; nothing when the span is not
/// recorded (disabled, or no registry).
fn spans(line: &mut String, span: &Span) {
    let Some(id) = span.id() else { return };
    tracing::dispatcher::get_default(|dispatch| {
        let Some(data) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(&id))
        else {
            return;
        };
        for s in data.scope().from_root() {
            let _ = span_part::<_, TextFields>(line, &s);
        }
        line.push(' ');
    });
}

/// A field's name as a line writes it before a quoted value, ` name="`:
/// one piece to append rather than a space, the name, `=` and a quote
/// (four appends; some 400 of the access line's instructions). Made by
/// [`field_name!`](crate::telemetry::field_name).
#[derive(Clone, Copy)]
pub(crate) struct FieldName(&'static str);

impl FieldName {
    /// From ` name="` as `field_name!` writes it.
    pub(crate) const fn spaced_and_quoted(text: &'static str) -> Self {
        FieldName(text)
    }
}

/// The [`FieldName`] of the field called `$name` (a string literal).
macro_rules! field_name {
    ($name:literal) => {
        $crate::telemetry::FieldName::spaced_and_quoted(concat!(" ", $name, "=\""))
    };
}
pub(crate) use field_name;

/// A line's fields, written as the text layer's fields are (`text_fields`).
pub(crate) struct TextFieldsOut<'a> {
    line: &'a mut String,
    empty: bool,
}

impl TextFieldsOut<'_> {
    /// ` name="`, without the space before the first field.
    fn quoted(&mut self, name: FieldName) -> &'static str {
        if std::mem::take(&mut self.empty) {
            &name.0[1..]
        } else {
            name.0
        }
    }

    /// ` name=` (no space before the first).
    fn name(&mut self, name: FieldName) {
        let quoted = self.quoted(name);
        self.line.push_str(&quoted[..quoted.len() - 1]);
    }

    /// A string field (`name = value`): quoted, escaped as `Debug` does.
    pub(crate) fn str(&mut self, name: FieldName, value: &str) {
        if plain(value) {
            let quoted = self.quoted(name);
            self.line.push_str(quoted);
            self.line.push_str(value);
            self.line.push('"');
        } else {
            self.name(name);
            let _ = write!(self.line, "{value:?}");
        }
    }

    /// A `%display` field whose `Display` is `value`: as it is.
    pub(crate) fn display(&mut self, name: FieldName, value: &str) {
        self.name(name);
        self.line.push_str(value);
    }

    /// An integer field.
    pub(crate) fn u64(&mut self, name: FieldName, value: u64) {
        self.name(name);
        self.line.push_str(itoa::Buffer::new().format(value));
    }
}

/// For tests of lines written both ways: runs `each` (given a direct
/// output) under a text layer; returns what the layer wrote and what the
/// direct output wrote, both with a fixed timestamp.
#[cfg(test)]
pub(crate) fn text_both_ways(
    each: impl FnOnce(&DirectText<super::test_sink::Sink, super::test_sink::FixedTime>),
) -> (String, String) {
    use super::test_sink::{FixedTime, Sink};
    use super::text_event::TextEvent;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    let layer_out = Sink::default();
    let out = layer_out.clone();
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .fmt_fields(TextFields)
        .event_format(TextEvent::new(FixedTime))
        .with_writer(move || out.clone())
        .boxed();
    let direct_out = Sink::default();
    let direct = DirectText::new(direct_out.clone(), FixedTime);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || each(&direct));
    (layer_out.text(), direct_out.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_the_text_layers_byte_for_byte() {
        let values = [
            "plain",
            "",
            "quote \" in",
            "tab\t",
            "é",
            "/v1/chat/completions",
        ];
        let (layer, direct) = text_both_ways(|direct| {
            let outer = tracing::info_span!(
                "request",
                id = %"r-1",
                method = %"POST",
                route = tracing::field::Empty
            );
            outer.record("route", "chat");
            let inner = tracing::info_span!(parent: &outer, "attempt", provider = "p");
            let empty = tracing::info_span!("empty");
            let none = Span::none();
            for (span, v) in [&outer, &inner, &empty, &none]
                .into_iter()
                .flat_map(|s| values.iter().map(move |v| (s, *v)))
            {
                tracing::info!(
                    target: "switchyard::access",
                    parent: span,
                    method = %v,
                    path = v,
                    status = 200u16,
                    ms = 7u64,
                );
                direct.line(
                    &Level::INFO,
                    "switchyard::access",
                    InSpan::Span(span),
                    |f| {
                        f.display(field_name!("method"), v);
                        f.str(field_name!("path"), v);
                        f.u64(field_name!("status"), 200);
                        f.u64(field_name!("ms"), 7);
                    },
                );
            }
        });
        assert_eq!(layer.lines().count(), 4 * values.len(), "{layer}");
        assert!(
            layer.contains("request{id=r-1 method=POST route=\"chat\"}:attempt{provider=\"p\"}: ")
        );
        assert!(layer.contains(" empty: switchyard::access: "), "{layer}");
        for (l, d) in layer.lines().zip(direct.lines()) {
            assert_eq!(l, d);
        }
        assert_eq!(layer, direct);
    }
}
