//! One request's access log line, and the lines a connection writes once it
//! has sent its answers.
//!
//! Place in the pipeline: `account` ends a request when its response body
//! ends, which is before the connection writes the body's last bytes (hyper
//! polls a body to its end, then flushes). The line written there sat
//! between the upstream's answer and the client's: about a third of the
//! gateway's own work on that path for a small chat request. So `account`
//! settles the request at once (metrics, budget, the trace's attributes)
//! and leaves only its [`AccessLine`] in the connection's `AfterWrite`
//! (`conn`), which `accept` runs after each flush. A request with no
//! connection (tests of the edge alone) writes its line at once. Where
//! the process logs text without colours and exports no traces, the line
//! is written straight into the log's buffer (`telemetry::direct_text`),
//! the same bytes as the event would give (a test compares). Must not
//! settle or meter anything, and must not hold the connection's activity
//! (that would be a cycle).

use tracing::Level;

use super::conn::AfterWriteWork;
use super::context::RequestCtx;
use super::span::REQUEST_SPAN;
use crate::telemetry::{self, InSpan, TextFieldsOut, field_name};

/// Whether access lines are written at all (the log filter may leave them
/// out): when not, `account` makes none. Asked only while tracing is off.
/// With tracing on, the log and trace layers filter each for itself, and an
/// `enabled!` that no event follows leaves its answer in the thread's
/// filter state, where the next span whose callsite every filter always
/// takes reads it (tokio-rs/tracing#2519): asked when a request ended and
/// its line waited for the flush, it dropped the next request's span on
/// the connection from the trace export. The line's own event then decides
/// when it is written.
pub(super) fn wanted() -> bool {
    tracing::enabled!(target: "switchyard::access", tracing::Level::INFO)
}

/// A finished request's line, as it will be written.
pub(super) struct AccessLine {
    /// The request's context, read once more for the line's fields (and
    /// the span the line is written in: the request's).
    pub ctx: Box<RequestCtx>,
    pub status: u16,
    /// The gateway's own error, code and message (sanitised, capped).
    pub error: Option<(&'static str, Box<str>)>,
    pub outcome: &'static str,
    /// From the request's arrival to the end of its body.
    pub ms: u64,
}

impl AfterWriteWork for AccessLine {
    fn run(self: Box<Self>) {
        self.write();
    }
}

impl AccessLine {
    pub(super) fn write(self) {
        let AccessLine {
            ctx: c,
            status,
            error,
            outcome,
            ms,
        } = self;
        let f = Fields {
            method: c.method.as_str(),
            path: &c.path,
            status,
            endpoint: c.endpoint,
            route: &c.route_label,
            requested: c.requested.as_deref().unwrap_or("-"),
            key: &c.key_alias,
            provider: c.provider.as_deref().unwrap_or("-"),
            model: c.spend.model().unwrap_or("-"),
            attempts: c.attempts,
            cache: c.cache.unwrap_or("-"),
            outcome,
            ms,
            request_id: &c.request_id,
            error_code: error.as_ref().map_or(c.error.unwrap_or("-"), |e| e.0),
            error: error.as_ref().map_or("-", |e| &*e.1),
        };
        match telemetry::direct_text() {
            // Text lines without trace export: the same bytes, directly.
            Some(out) => {
                let span = match &c.span_text {
                    Some(text) => InSpan::Root(REQUEST_SPAN, text),
                    None => InSpan::Span(&c.span),
                };
                out.line(&Level::INFO, TARGET, span, |o| f.direct(o));
            }
            None => {
                // The trace id only when tracing is on (the request span
                // has one then).
                let trace_id = telemetry::tracing_on()
                    .then(|| telemetry::w3c::trace_id(&c.span))
                    .flatten();
                f.event(&c.span, trace_id);
            }
        }
    }
}

/// The access log's target (`RUST_LOG=switchyard::access=off` drops it).
const TARGET: &str = "switchyard::access";

/// A line's fields, the same whichever way it is written.
struct Fields<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    endpoint: &'a str,
    route: &'a str,
    requested: &'a str,
    key: &'a str,
    provider: &'a str,
    model: &'a str,
    attempts: u32,
    cache: &'a str,
    outcome: &'a str,
    ms: u64,
    request_id: &'a str,
    error_code: &'a str,
    error: &'a str,
}

impl Fields<'_> {
    /// As an event, through the subscriber's layers.
    fn event(&self, span: &tracing::Span, trace_id: Option<String>) {
        tracing::info!(
            target: TARGET,
            parent: span,
            method = %self.method,
            path = self.path,
            status = self.status,
            endpoint = self.endpoint,
            route = self.route,
            requested = self.requested,
            key = self.key,
            provider = self.provider,
            model = self.model,
            attempts = self.attempts,
            cache = self.cache,
            outcome = self.outcome,
            ms = self.ms,
            request_id = self.request_id,
            error_code = self.error_code,
            error = self.error,
            trace_id,
        );
    }

    /// Into a text line, as the text layer writes [`Fields::event`]'s.
    fn direct(&self, o: &mut TextFieldsOut<'_>) {
        o.display(field_name!("method"), self.method);
        o.str(field_name!("path"), self.path);
        o.u64(field_name!("status"), u64::from(self.status));
        o.str(field_name!("endpoint"), self.endpoint);
        o.str(field_name!("route"), self.route);
        o.str(field_name!("requested"), self.requested);
        o.str(field_name!("key"), self.key);
        o.str(field_name!("provider"), self.provider);
        o.str(field_name!("model"), self.model);
        o.u64(field_name!("attempts"), u64::from(self.attempts));
        o.str(field_name!("cache"), self.cache);
        o.str(field_name!("outcome"), self.outcome);
        o.u64(field_name!("ms"), self.ms);
        o.str(field_name!("request_id"), self.request_id);
        o.str(field_name!("error_code"), self.error_code);
        o.str(field_name!("error"), self.error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line's fields with `s` in every string (a key's alias, an error).
    fn fields(s: &str) -> Fields<'_> {
        Fields {
            method: "POST",
            path: "/v1/chat/completions",
            status: 502,
            endpoint: "chat",
            route: s,
            requested: s,
            key: s,
            provider: s,
            model: s,
            attempts: 3,
            cache: "miss",
            outcome: "complete",
            ms: 12,
            request_id: "4b0ce177de87487ba7f3fae1da371334",
            error_code: "upstream_error",
            error: s,
        }
    }

    #[test]
    fn the_direct_line_is_the_events_line() {
        let values = ["gpt-4o-mini", "-", "", "a \"quoted\" name", "tab\tand é"];
        let (layer, direct) = telemetry::text_both_ways(|direct| {
            let span = tracing::info_span!("request", id = %"r-1", method = %"POST");
            for v in values {
                let f = fields(v);
                f.event(&span, None);
                direct.line(&Level::INFO, TARGET, InSpan::Span(&span), |o| f.direct(o));
            }
        });
        assert_eq!(layer.lines().count(), values.len(), "{layer}");
        assert!(
            layer.contains(
                ": switchyard::access: method=POST path=\"/v1/chat/completions\" status=502"
            ),
            "{layer}"
        );
        assert!(
            layer.contains(" error=\"a \\\"quoted\\\" name\"\n"),
            "{layer}"
        );
        for (l, d) in layer.lines().zip(direct.lines()) {
            assert_eq!(l, d);
        }
        assert_eq!(layer, direct);
    }
}
