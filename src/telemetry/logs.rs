//! Log lines: text or JSON on stdout through a non-blocking writer.
//!
//! Place in the pipeline: part of the subscriber [`super::init`] installs.
//! Text lines are coloured only when stdout is a terminal (and `NO_COLOR`
//! is unset), so a redirected log has no escape codes; JSON lines are one
//! object each (`timestamp`, `level`, `target`, the event's fields at the
//! top level, and the request's span as `span`). Both leave out the
//! `otel.*` fields that only shape exported spans. Lines are handed to a
//! writer thread (`log_writer`): a request never waits for stdout (when
//! its buffer is full, lines are dropped and counted, not waited for).
//! Must not decide what is logged: events and their fields are the code's.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer as FieldWriter;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::log_time::LogTime;
use super::log_writer::{self, Lines, LogWriter};
use super::text_event::TextEvent;
use super::text_fields::{TextFields, for_spans_only};

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The writer thread's handle: writes what is buffered when finished.
pub(super) struct Writer(LogWriter);

impl Writer {
    /// Writes the lines still buffered and says how many were dropped.
    pub(super) fn finish(self) {
        let dropped = self.0.finish();
        if dropped > 0 {
            eprintln!("switchyard: {dropped} log line(s) dropped (stdout did not keep up)");
        }
    }
}

/// The log layer for `format` on stdout and its writer thread.
pub(super) struct LogLayer<S> {
    pub writer: Writer,
    pub layer: Box<dyn Layer<S> + Send + Sync + 'static>,
    /// The layer's output, when its lines may also be written directly
    /// (`direct_line`): text without colours.
    pub direct: Option<Lines>,
}

/// The log layer for `format` on stdout, and its writer thread.
pub(super) fn layer<S>(format: LogFormat) -> LogLayer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let (out, writer) = log_writer::start(std::io::stdout());
    let ansi = colour();
    let direct = (format == LogFormat::Text && !ansi).then(|| out.clone());
    let layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .event_format(TextEvent::new(LogTime))
            .fmt_fields(TextFields)
            .with_writer(out)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(JsonFields)
            .with_writer(out)
            .boxed(),
    };
    LogLayer {
        writer: Writer(writer),
        layer,
        direct,
    }
}

/// Colour only for a person at a terminal.
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The JSON format's span fields, less [`for_spans_only`] ones.
struct JsonFields;

/// Collects fields as JSON values.
#[derive(Default)]
struct JsonMap(BTreeMap<String, serde_json::Value>);

impl Visit for JsonMap {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !for_spans_only(field) {
            let text = format!("{value:?}");
            self.0.insert(field.name().into(), text.into());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if !for_spans_only(field) {
            self.0.insert(field.name().into(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !for_spans_only(field) {
            self.0.insert(field.name().into(), value.into());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !for_spans_only(field) {
            self.0.insert(field.name().into(), value.into());
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if !for_spans_only(field) {
            self.0.insert(field.name().into(), value.into());
        }
    }
}

impl JsonMap {
    fn write(&self, mut writer: FieldWriter<'_>) -> fmt::Result {
        let text = serde_json::to_string(&self.0).map_err(|_| fmt::Error)?;
        fmt::Write::write_str(&mut writer, &text)
    }
}

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, writer: FieldWriter<'w>, fields: R) -> fmt::Result {
        let mut v = JsonMap::default();
        fields.record(&mut v);
        v.write(writer)
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut v = JsonMap::default();
        if !current.fields.is_empty() {
            v.0 = serde_json::from_str(&current.fields).map_err(|_| fmt::Error)?;
        }
        fields.record(&mut v);
        current.fields.clear();
        v.write(current.as_writer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::test_sink::Sink;
    use tracing_subscriber::layer::SubscriberExt;

    fn emit(json: bool) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let make = move || out.clone();
        let layer = if json {
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .fmt_fields(JsonFields)
                .with_writer(make)
                .boxed()
        } else {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .fmt_fields(TextFields)
                .with_writer(make)
                .boxed()
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                id = "r-1",
                otel.kind = "server",
                route = tracing::field::Empty,
                otel.name = tracing::field::Empty
            );
            span.record("otel.name", "chat m");
            span.record("route", "m");
            let _in = span.enter();
            tracing::info!(status = 200u64, "done");
        });
        sink.text()
    }

    #[test]
    fn span_only_fields_stay_out_of_text_lines() {
        let line = emit(false);
        assert!(line.contains("request{id=\"r-1\" route=\"m\"}"), "{line}");
        assert!(!line.contains("otel"), "{line}");
    }

    #[test]
    fn json_lines_are_objects_with_the_span_and_without_span_only_fields() {
        let line = emit(true);
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["message"], "done");
        assert_eq!(v["status"], 200);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["span"]["id"], "r-1");
        assert_eq!(v["span"]["route"], "m");
        assert_eq!(v["span"]["name"], "request");
        assert!(!line.contains("otel"), "{line}");
    }
}
