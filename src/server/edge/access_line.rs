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
//! connection (tests of the edge alone) writes its line at once. Must not
//! settle or meter anything, and must not hold the connection's activity
//! (that would be a cycle).

use super::conn::AfterWriteWork;
use super::context::RequestCtx;
use crate::telemetry;

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
    /// The request's context, read once more for the line's fields.
    pub ctx: Box<RequestCtx>,
    /// The span the line is written in (the request's, where it ended).
    pub span: tracing::Span,
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
            span,
            status,
            error,
            outcome,
            ms,
        } = self;
        // The trace id only when tracing is on (the request span has one then).
        let trace_id = telemetry::tracing_on()
            .then(|| telemetry::w3c::trace_id(&c.span))
            .flatten();
        tracing::info!(
            target: "switchyard::access",
            parent: &span,
            method = %c.method,
            path = c.path,
            status,
            endpoint = c.endpoint,
            route = c.route_label,
            requested = c.requested.as_deref().unwrap_or("-"),
            key = &*c.key_alias,
            provider = c.provider.as_deref().unwrap_or("-"),
            model = c.spend.model().unwrap_or("-"),
            attempts = c.attempts,
            cache = c.cache.unwrap_or("-"),
            outcome,
            ms,
            request_id = c.request_id,
            error_code = error.as_ref().map_or(c.error.unwrap_or("-"), |e| e.0),
            error = error.as_ref().map_or("-", |e| &*e.1),
            trace_id,
        );
    }
}
