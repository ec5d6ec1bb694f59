//! Telemetry: where log lines and trace spans go, and the trace context
//! that crosses the gateway.
//!
//! Place in the pipeline: outside it, beside `config`. The binary calls
//! [`init`] once, before the gateway starts: it installs the process's
//! tracing subscriber (text or JSON log lines through a non-blocking
//! writer, colour only on a terminal, level from a flag or `RUST_LOG`) and,
//! when the policy or the `OTEL_*` variables name a collector, an OTLP
//! exporter (HTTP/protobuf or gRPC) behind a batching processor that runs
//! off the request path. The gateway's code only makes spans and asks
//! [`tracing_on`] before recording anything that is for traces alone, so
//! tracing that is off costs nothing beyond the request span logs already
//! have. With text lines without colours and no export (the default),
//! the access line is written straight into the log's buffer
//! (`direct_line`) and the request span's fields are kept as text beside
//! it (`span_text`), byte for byte what the layer would write. [`w3c`] reads a client's `traceparent` / `tracestate` and writes
//! the current span's into upstream requests; [`semconv`] names things the
//! way the OpenTelemetry GenAI conventions do. Must not know routes,
//! providers or endpoints beyond those names.

mod direct_line;
mod level;
mod log_time;
mod log_writer;
mod logs;
mod otel;
mod request_scope;
pub mod semconv;
mod span_text;
#[cfg(test)]
pub(crate) mod test_sink;
mod text_event;
mod text_fields;
pub mod w3c;

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[cfg(test)]
pub(crate) use direct_line::text_both_ways;
pub(crate) use direct_line::{FieldName, InSpan, TextFieldsOut, direct_text, field_name};
pub use logs::LogFormat;
pub(crate) use request_scope::RequestScope;
pub(crate) use span_text::{REQUEST as REQUEST_SPAN, SpanText, span_text_on};

use crate::config::TracingSettings;

/// Whether spans are exported by this process. Set once by [`init`]; like
/// the tracing subscriber it mirrors, it is process-wide (a gateway in a
/// test process without [`init`] sees it off).
static TRACING_ON: AtomicBool = AtomicBool::new(false);

/// Whether trace spans are exported: when off, nothing is recorded for
/// traces alone (no span attributes, no trace context upstream).
#[inline]
pub fn tracing_on() -> bool {
    TRACING_ON.load(Ordering::Relaxed)
}

/// How the process logs.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub format: LogFormat,
    /// An `EnvFilter` directive (`info`, `warn,switchyard::access=info`);
    /// `None` reads `RUST_LOG`, else `info`.
    pub level: Option<String>,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log level {0:?}: {1}")]
    Level(String, String),
    #[error("tracing exporter: {0}")]
    Exporter(String),
    #[error("a tracing subscriber is already installed")]
    AlreadySet,
}

/// What [`init`] set up; [`Telemetry::shutdown`] flushes it (spans still
/// queued are exported, log lines still buffered are written).
#[must_use = "dropping it stops the log writer"]
pub struct Telemetry {
    logs: logs::Writer,
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("tracing", &self.tracer.is_some())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Exports the spans still queued (bounded by the export timeout), then
    /// flushes the log writer. Call it outside the runtime's worker threads
    /// while the runtime still runs (the exporter's requests run on it).
    pub fn shutdown(self) {
        if let Some(tracer) = &self.tracer
            && let Err(e) = tracer.shutdown()
        {
            tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
        }
        self.logs.finish();
    }
}

/// Installs the process's subscriber: logs per `logs`, and trace export
/// per `tracing` when it is `Some`. The exporter's connections are made on
/// `runtime` (its batching processor has its own thread).
pub fn init(
    logs: &LogOptions,
    tracing: Option<&TracingSettings>,
    runtime: &tokio::runtime::Handle,
) -> Result<Telemetry, TelemetryError> {
    let filter = level::LevelFilter::new(logs.level.as_deref())?;
    let Some(settings) = tracing else {
        let log = logs::layer(logs.format);
        // Tracing off: exactly a filtered log layer, nothing else per event,
        // so a text line may also skip it (`direct_line`).
        tracing_subscriber::registry()
            .with(filter.into_layer())
            .with(log.layer)
            .try_init()
            .map_err(|_| TelemetryError::AlreadySet)?;
        if let Some(out) = log.direct {
            direct_line::install(out);
        }
        return Ok(Telemetry {
            logs: log.writer,
            tracer: None,
        });
    };
    let provider = otel::provider(settings, runtime)?;
    let logs::LogLayer {
        writer,
        layer: fmt_layer,
        ..
    } = logs::layer(logs.format);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    use tracing_subscriber::Layer;
    tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter.into_filter()))
        .with(otel::layer(&provider))
        .try_init()
        .map_err(|_| TelemetryError::AlreadySet)?;
    TRACING_ON.store(true, Ordering::Relaxed);
    tracing::info!(
        endpoint = %settings.endpoint,
        protocol = settings.protocol.label(),
        sample_ratio = settings.sample_ratio,
        "exporting traces over OTLP"
    );
    Ok(Telemetry {
        logs: writer,
        tracer: Some(provider),
    })
}
