//! An in-process OpenTelemetry collector: receives OTLP exports on
//! 127.0.0.1:0, over HTTP/protobuf (`POST /v1/traces`) and over gRPC
//! (HTTP/2 `TraceService/Export`, length-prefixed messages, `grpc-status`
//! trailer), and keeps the spans, decoded with the opentelemetry-proto types.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
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
            let mut body = req.into_body().collect().await.unwrap().to_bytes();
            let grpc = path == GRPC_EXPORT;
            if grpc {
                // One uncompressed message: flag byte, 4-byte length, protobuf.
                if body.len() < 5 || body[0] != 0 {
                    return grpc_answer(13);
                }
                body = body.slice(5..);
            }
            let status = match ExportTraceServiceRequest::decode(body) {
                Ok(export) if path == "/v1/traces" || grpc => {
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
            if grpc {
                return grpc_answer(if status == 200 { 0 } else { 3 });
            }
            let reply = ExportTraceServiceResponse::default().encode_to_vec();
            let mut r = hyper::Response::new(Full::new(Bytes::from(reply)).boxed());
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

const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A gRPC answer: an empty `ExportTraceServiceResponse` and `grpc-status`
/// (0 OK) in the trailers.
fn grpc_answer(code: u32) -> hyper::Response<Body> {
    let reply = ExportTraceServiceResponse::default().encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(reply.len() as u32).to_be_bytes());
    framed.extend_from_slice(&reply);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", code.to_string().parse().unwrap());
    let frames = vec![
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(framed))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut r = hyper::Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
    r.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    r
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

/// The spans of one trace, of one kind.
pub fn in_trace<'a>(spans: &'a [Received], trace: &str, kind: SpanKind) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|r| hex_id(&r.span.trace_id) == trace && r.span.kind == kind as i32)
        .collect()
}

/// The one server (request) span of a trace.
pub fn one_request_span<'a>(spans: &'a [Received], trace: &str) -> &'a Received {
    let found = in_trace(spans, trace, SpanKind::Server);
    assert_eq!(
        found.len(),
        1,
        "one request span in trace {trace}: {spans:#?}"
    );
    found[0]
}
