//! The OTLP trace pipeline: exporter, batching processor, sampler, and the
//! `tracing` layer that turns spans into OpenTelemetry spans.
//!
//! Place in the pipeline: built by [`super::init`] from the policy's
//! resolved [`TracingSettings`]. Spans are queued by the batching processor
//! (its own thread; a full queue drops spans, it never blocks a request)
//! and exported in batches: over OTLP/HTTP with the gateway's own HTTP
//! client (rustls, run on the gateway's runtime), or over OTLP/gRPC
//! (tonic; TLS with the web's root certificates for `https://`). Sampling
//! follows a client's sampled flag, else keeps `sample_ratio` of new
//! traces. Must not be on the request path: nothing here runs per request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use super::TelemetryError;
use crate::config::{OtlpProtocol, TracingSettings};

/// The tracer provider (exporter, batching, sampler, resource) for `settings`.
pub(super) fn provider(
    settings: &TracingSettings,
    runtime: &tokio::runtime::Handle,
) -> Result<SdkTracerProvider, TelemetryError> {
    let failed =
        |e: opentelemetry_otlp::ExporterBuildError| TelemetryError::Exporter(e.to_string());
    let exporter = match settings.protocol {
        OtlpProtocol::HttpProtobuf => {
            let headers: HashMap<String, String> = settings
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect();
            let client = OnRuntime {
                client: reqwest::Client::builder()
                    .timeout(settings.timeout)
                    .build()
                    .map_err(|e| TelemetryError::Exporter(e.to_string()))?,
                runtime: runtime.clone(),
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(settings.endpoint.as_str())
                .with_timeout(settings.timeout)
                .with_headers(headers)
                .build()
                .map_err(failed)?
        }
        OtlpProtocol::Grpc => {
            let mut headers = http::HeaderMap::new();
            for (k, v) in &settings.headers {
                let key = http::HeaderName::from_bytes(k.as_bytes());
                let value = http::HeaderValue::from_str(v.expose());
                if let (Ok(key), Ok(value)) = (key, value) {
                    headers.insert(key, value);
                }
            }
            let metadata =
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
            // The channel's background task is spawned on the runtime.
            let _entered = runtime.enter();
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.endpoint.as_str())
                .with_timeout(settings.timeout)
                .with_metadata(metadata);
            if settings.endpoint.starts_with("https://") {
                builder = builder.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_webpki_roots(),
                );
            }
            builder.build().map_err(failed)?
        }
    };
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The layer that exports the gateway's spans (`switchyard` targets at
/// info and above) and attaches its warnings and errors to them as events.
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let tracer = provider.tracer("switchyard");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            let level = if meta.is_span() {
                tracing::Level::INFO
            } else {
                tracing::Level::WARN
            };
            meta.target().starts_with("switchyard") && *meta.level() <= level
        }))
}

/// OTLP/HTTP on the gateway's HTTP client: the batching processor's
/// thread has no runtime, so each export runs as a task on the gateway's.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

type Sent<'a> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'a>>;

// `HttpClient` is an `async_trait`: this is the signature it expands to.
impl HttpClient for OnRuntime {
    fn send_bytes<'a, 'b>(&'a self, request: Request<Bytes>) -> Sent<'b>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(self.send(request))
    }
}

impl OnRuntime {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let mut out = Response::builder().status(response.status().as_u16());
            for (k, v) in response.headers() {
                out = out.header(k.as_str(), v.as_bytes());
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(out.body(body)?)
        });
        sent.await?
    }
}
