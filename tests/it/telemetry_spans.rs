//! Request spans of the real binary at an in-process OTLP collector, one
//! request at a time: every request on a kept-alive connection has its own
//! span (its access line is written after its answer), and a streamed
//! attempt's span carries the usage from the stream's end.

use crate::common;
use crate::telemetry::{CLIENT_SPAN, send, traceparent};

use common::otlp::{OtlpReceiver, attr, in_trace, one_request_span};
use common::raw_http::read_response;
use common::served::Served;
use common::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TRACE_STREAM: &str = "8bf92f3577b34da6a3ce929d0e0e473a";

/// Sixteen requests one after another on one connection, each in a trace
/// of its own: each has its request span, under the client's, and its
/// access line. (Deciding at the end of a request whether its line is
/// wanted, for a line written later, once dropped the next request's span
/// on the same connection from the export.)
#[tokio::test]
async fn every_request_on_a_kept_alive_connection_has_its_own_span_and_line() {
    let collector = OtlpReceiver::start().await;
    let up = FakeUpstream::openai().await;
    let yaml = format!(
        "{}routes:\n  kept:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&up], "")
    );
    let served = Served::with_policy(
        &yaml,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("SWITCHYARD_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let traces: Vec<String> = (1..=16u128)
        .map(|i| format!("{:032x}", (0xabcd_u128 << 112) + i))
        .collect();
    let body = json!({"model": "kept", "messages": [{"role": "user", "content": "hi"}]});
    let body = body.to_string();
    let mut sock = TcpStream::connect(served.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for trace in &traces {
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             traceparent: {}\r\ncontent-length: {}\r\n\r\n{body}",
            traceparent(trace),
            body.len()
        );
        sock.write_all(request.as_bytes()).await.unwrap();
        let (head, answer) = read_response(&mut sock).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(answer["object"], "chat.completion");
        let id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .expect("x-request-id")
            .trim()
            .to_string();
        ids.push(id);
    }
    drop(sock);
    let (log, _dir) = served.stop().await;
    let spans = collector.spans();
    for trace in &traces {
        let request = one_request_span(&spans, trace);
        assert_eq!(request.span.name, "chat kept");
        assert_eq!(
            common::otlp::hex_id(&request.span.parent_span_id),
            CLIENT_SPAN
        );
        assert_eq!(
            in_trace(&spans, trace, SpanKind::Client).len(),
            1,
            "{trace}"
        );
    }
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "switchyard::access")
        .collect();
    for (trace, id) in traces.iter().zip(&ids) {
        let line = lines
            .iter()
            .find(|v| v["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no access line for {id} in\n{log}"));
        assert_eq!(line["trace_id"], trace.as_str(), "{line}");
        assert_eq!(line["status"], 200, "{line}");
    }
}

/// A streamed answer's usage comes in its last chunk, after the attempt
/// returned: the attempt's span stays open until the stream ends and
/// carries the tokens, as the request's span does.
#[tokio::test]
async fn a_streamed_attempt_span_carries_the_usage_of_the_streams_end() {
    let collector = OtlpReceiver::start().await;
    let up = FakeUpstream::start(|s, _| async move {
        let chunk = |delta: Value, usage: Value| {
            let c = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                           "model": s.body["model"], "usage": usage,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
            format!("data: {c}\n\n")
        };
        let mut events = vec![
            chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), Value::Null),
        ];
        assert_eq!(s.body["stream_options"]["include_usage"], true);
        let last = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                          "model": s.body["model"], "choices": [],
                          "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}});
        events.push(format!("data: {last}\n\n"));
        events.push("data: [DONE]\n\n".into());
        Reply::Sse(events, std::time::Duration::from_millis(20))
    })
    .await;
    let yaml = format!(
        "{}routes:\n  streamed:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&up], "")
    );
    let served = Served::with_policy(
        &yaml,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let r = send(
        &reqwest::Client::new(),
        &served.base,
        "/v1/chat/completions",
        json!({"model": "streamed", "stream": true,
               "messages": [{"role": "user", "content": "hi"}]}),
        TRACE_STREAM,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Hel") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
    assert!(
        !body.contains("prompt_tokens"),
        "the client asked for no usage"
    );
    served.stop().await;
    let spans = collector.spans();
    let request = one_request_span(&spans, TRACE_STREAM);
    let attempts = in_trace(&spans, TRACE_STREAM, SpanKind::Client);
    assert_eq!(attempts.len(), 1, "{spans:#?}");
    let attempt = &attempts[0].span;
    for (key, value) in [
        ("gen_ai.usage.input_tokens", "11"),
        ("gen_ai.usage.output_tokens", "7"),
    ] {
        assert_eq!(
            attr(attempt, key).as_deref(),
            Some(value),
            "{key} of {attempt:#?}"
        );
        assert_eq!(attr(&request.span, key).as_deref(), Some(value), "{key}");
    }
    // Open until the last chunk, 60 ms of gaps after the answer's head.
    let lasted = attempt.end_time_unix_nano - attempt.start_time_unix_nano;
    assert!(lasted >= 60_000_000, "{lasted} ns");
}
