//! An in-process OpenTelemetry collector: receives OTLP/HTTP protobuf
//! exports on 127.0.0.1:0 (`POST /v1/traces`) and keeps the spans, decoded
//! with the opentelemetry-proto types.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// One received span with the `service.name` of the resource it came in.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

#[derive(Default)]
struct Inbox {
    spans: Mutex<Vec<Received>>,
    /// Headers of each export request (for `headers_env` / OTEL_EXPORTER_OTLP_HEADERS).
    headers: Mutex<Vec<http::HeaderMap>>,
}

pub struct OtlpReceiver {
    pub addr: SocketAddr,
    inbox: Arc<Inbox>,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let inbox = Arc::new(Inbox::default());
        let addr = super::serve_raw(Arc::clone(&inbox), |inbox, req| async move {
            let path = req.uri().path().to_string();
            let headers = req.headers().clone();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let status = match ExportTraceServiceRequest::decode(body) {
                Ok(export) if path == "/v1/traces" => {
                    inbox.headers.lock().unwrap().push(headers);
                    let mut spans = inbox.spans.lock().unwrap();
                    for rs in export.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                                AnyValue::StringValue(s) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for ss in rs.scope_spans {
                            for span in ss.spans {
                                spans.push(Received {
                                    service: service.clone(),
                                    span,
                                });
                            }
                        }
                    }
                    200
                }
                _ => 400,
            };
            let reply = ExportTraceServiceResponse::default().encode_to_vec();
            let mut r = hyper::Response::new(Full::new(Bytes::from(reply)));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert("content-type", "application/x-protobuf".parse().unwrap());
            r
        })
        .await;
        OtlpReceiver { addr, inbox }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Received> {
        self.inbox.spans.lock().unwrap().clone()
    }

    pub fn export_headers(&self) -> Vec<http::HeaderMap> {
        self.inbox.headers.lock().unwrap().clone()
    }
}

/// A span attribute as text (strings as they are, numbers and booleans
/// printed), or `None` when the span does not have it.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match kv.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// Ids as the W3C header spells them (lower-case hex).
pub fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
