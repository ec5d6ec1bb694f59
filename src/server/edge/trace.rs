//! The request span's attributes, recorded once at the end of the request.
//!
//! Place in the pipeline: called by `account` when the response body has
//! been sent or abandoned, with the final status, only when tracing is on
//! (`telemetry::tracing_on`). Writes the OpenTelemetry GenAI attributes
//! (operation, provider, requested and answering model, token usage) and the
//! gateway's own (route, key alias, cache result, attempts, error code) onto
//! the exported span, straight into the span's OpenTelemetry data, so log
//! lines never format them. Must not change the request or the response.

use opentelemetry::trace::{Status, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::context::RequestCtx;
use crate::telemetry::semconv as sc;

impl RequestCtx {
    /// Records the request's attributes on its span (`status`: what the
    /// client got; `interrupted`: a stream that broke after it started).
    pub(super) fn record_trace(&self, status: u16, interrupted: bool) {
        let span = &self.span;
        span.set_attribute(sc::HTTP_STATUS, i64::from(status));
        span.set_attribute(sc::HTTP_ROUTE, self.path.clone());
        if let Some(op) = sc::operation(self.endpoint) {
            span.set_attribute(sc::OPERATION, op);
            if let Some(route) = &self.route {
                // The span started at the edge (its trace id is in the log
                // lines): renamed in place, as the GenAI conventions name it.
                span.context()
                    .span()
                    .update_name(format!("{op} {}", route.spec.name));
            }
        }
        if let Some(route) = &self.route {
            span.set_attribute(sc::REQUEST_MODEL, route.spec.name.clone());
            span.set_attribute(sc::ROUTE, route.spec.name.clone());
        }
        span.set_attribute(sc::KEY, self.key_alias.to_string());
        if let Some(provider) = &self.provider {
            span.set_attribute(sc::PROVIDER_ENTRY, provider.to_string());
            if let Some(handle) = self.rt.table.providers.get(&**provider) {
                span.set_attribute(sc::PROVIDER, sc::provider_name(&handle.spec.kind));
            }
        }
        if let Some(model) = self.spend.model() {
            span.set_attribute(sc::RESPONSE_MODEL, model.to_string());
        }
        if let Some(usage) = self.spend.total() {
            span.set_attribute(sc::INPUT_TOKENS, usage.prompt as i64);
            span.set_attribute(sc::OUTPUT_TOKENS, usage.completion as i64);
        }
        if let Some(cache) = self.cache {
            span.set_attribute(sc::CACHE, cache);
        }
        span.set_attribute(sc::ATTEMPTS, i64::from(self.attempts));
        let error = match (self.error, interrupted) {
            (_, true) => Some("stream_interrupted"),
            (e, false) => e,
        };
        if let Some(code) = error {
            span.set_attribute(sc::ERROR_TYPE, code);
        }
        // Server spans are errors for 5xx only (the client's 4xx are its own).
        if status >= 500 || interrupted {
            span.set_status(Status::error(error.unwrap_or("server error")));
        }
    }
}
