//! The request span's fields as the text log writes them, standing for the
//! span: `id=… method=… path=…`, then ` route=…` and ` provider=…` as the
//! request learns them.
//!
//! Place in the pipeline: made by the edge's span step for each request
//! when the process logs text without colours and exports no traces (the
//! same condition as `direct_line`), and entered as the request's scope
//! (`request_scope`) in place of a span in the registry; the request
//! context records into it; the text layer's event format (`text_event`)
//! and the direct lines (`direct_line`) write it in braces after the
//! span's name, where the span's own fields would be. Given to a span as
//! fields, these values
//! went through tracing's dispatch and `fmt` machinery when the span was
//! made and at each record: about 4,000 instructions of a 1 KB chat
//! request, for a prefix that only the rare line inside a request shows
//! (the access line writes the same facts as fields of its own). Must not
//! change what a line says: the text is what the text fields format
//! (`text_fields`) writes for `%display` values, and a test of the binary
//! compares the whole line.

use std::sync::{Arc, Mutex};

/// The request span's name, written before its text.
pub(crate) const REQUEST: &str = "request";

/// The text of a span's fields, shared by the span (as an extension) and
/// whoever records into it.
#[derive(Clone, Debug)]
pub(crate) struct SpanText(Arc<Mutex<String>>);

impl SpanText {
    /// `id=… method=… path=…` (each written as `%display` writes it).
    pub(crate) fn request(id: &str, method: &str, path: &str) -> Self {
        let mut text = String::with_capacity(96 + path.len());
        text.push_str("id=");
        text.push_str(id);
        text.push_str(" method=");
        text.push_str(method);
        text.push_str(" path=");
        text.push_str(path);
        SpanText(Arc::new(Mutex::new(text)))
    }

    /// Records `name` as `%value`: appended, as a span's recorded field is.
    pub(crate) fn record(&self, name: &str, value: &str) {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        text.push(' ');
        text.push_str(name);
        text.push('=');
        text.push_str(value);
    }

    /// Appends `{text}` to `out`.
    pub(super) fn write_braced(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        let text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        out.write_char('{')?;
        out.write_str(&text)?;
        out.write_char('}')
    }
}

/// Whether request spans carry their fields as [`SpanText`]: where every
/// line that shows them is written by `text_event` or `direct_line`.
#[inline]
pub(crate) fn span_text_on() -> bool {
    super::direct_text().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{InSpan, RequestScope, text_both_ways};
    use tracing::Level;
    use tracing::field::Empty;

    #[test]
    fn lines_in_a_request_scope_are_those_in_a_span_with_fields() {
        let (layer, direct) = text_both_ways(|direct| {
            let id = "4b0ce177de87487ba7f3fae1da371334";
            let path = "/v1/chat/completions";
            let full = tracing::info_span!(
                "request",
                id = %id,
                method = %"POST",
                path = %path,
                route = Empty,
                provider = Empty,
            );
            let text = SpanText::request(id, "POST", path);
            let scope = RequestScope::text(text.clone());
            // Lines before and after each record, in the span and in the
            // scope, alone and in a child span: the same.
            let write = |step: u64| {
                let line = || tracing::warn!(target: "switchyard::x", step);
                let child = || {
                    let attempt = tracing::info_span!("attempt", provider = "p");
                    attempt.in_scope(line);
                };
                full.in_scope(line);
                scope.in_scope(line);
                full.in_scope(child);
                scope.in_scope(child);
                let field = |o: &mut crate::telemetry::TextFieldsOut<'_>| {
                    o.u64(crate::telemetry::field_name!("step"), step)
                };
                direct.line(&Level::WARN, "switchyard::x", InSpan::Span(&full), field);
                // The request's span named with its text, no lookup.
                direct.line(
                    &Level::WARN,
                    "switchyard::x",
                    InSpan::Root(REQUEST, &text),
                    field,
                );
            };
            write(0);
            full.record("route", tracing::field::display("failover"));
            text.record("route", "failover");
            write(1);
            full.record("provider", tracing::field::display("p0"));
            text.record("provider", "p0");
            write(2);
        });
        let layer: Vec<&str> = layer.lines().collect();
        assert_eq!(layer.len(), 12, "{layer:#?}");
        for pair in layer.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        assert!(
            layer[9].contains(
                " WARN request{id=4b0ce177de87487ba7f3fae1da371334 method=POST \
                 path=/v1/chat/completions route=failover provider=p0}: "
            ),
            "{}",
            layer[9]
        );
        assert!(
            layer[11].contains("route=failover provider=p0}:attempt{provider=\"p\"}: "),
            "{}",
            layer[11]
        );
        let direct: Vec<&str> = direct.lines().collect();
        assert_eq!(direct.len(), 6);
        for (two, layer) in direct.chunks(2).zip(layer.chunks(4)) {
            assert_eq!(two[0], layer[0]);
            assert_eq!(two[1], two[0]);
            assert!(two[0].contains(" request{id=4b0ce177de87487ba7f3fae1da371334 method=POST "));
        }
    }
}
