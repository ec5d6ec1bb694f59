//! Unit tests of the stream <-> whole answer conversions.

use super::*;

fn events(stream: &[u8]) -> Vec<Value> {
    SseDecoder::new()
        .decode(stream)
        .into_iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn chunk(delta: Value, finish: Value) -> String {
    let c = json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

#[test]
fn assembles_content_tool_calls_and_usage() {
    let mut s = String::new();
    s += &chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    s += &chunk(json!({"content": "Hel"}), Value::Null);
    s += &chunk(json!({"content": "lo"}), Value::Null);
    s += &chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "get", "arguments": "{\"a\""}}]}),
        Value::Null,
    );
    s += &chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        Value::Null,
    );
    s += &chunk(json!({}), json!("tool_calls"));
    s += "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],\"usage\":{\"total_tokens\":9}}\n\ndata: [DONE]\n\n";
    let done: Value = serde_json::from_slice(&assemble(s.as_bytes()).unwrap()).unwrap();
    assert_eq!(done["object"], "chat.completion");
    assert_eq!(done["id"], "c1");
    let m = &done["choices"][0]["message"];
    assert_eq!(m["content"], "Hello");
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "get");
    assert_eq!(done["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(done["usage"]["total_tokens"], 9);
    // Stripping usage drops the usage-only chunk and keeps the rest.
    let stripped = strip_usage(s.as_bytes());
    assert_eq!(events(&stripped).len(), events(s.as_bytes()).len() - 1);
    assert!(stripped.ends_with(DONE));
}

#[test]
fn stripping_usage_leaves_every_other_event_as_it_came() {
    // A comment, an id, a data field without its space, two data lines:
    // none of them carries usage, so none is written again.
    let others =
        "event: x\nid: 7\ndata:{\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\ndata: 2}\r\n\r\n";
    let usage = "data: {\"choices\":[],\"usage\":{\"total_tokens\":3}}\n\n";
    let with_field = "data: {\"choices\":[{\"index\":0}],\"usage\":{\"total_tokens\":3}}\n\n";
    let run = format!("{others}{usage}{with_field}data: [DONE]\n\n");
    let out = strip_usage(run.as_bytes());
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        format!("{others}data: {{\"choices\":[{{\"index\":0}}]}}\n\ndata: [DONE]\n\n")
    );
}

#[test]
fn splits_a_completion_into_valid_chunks() {
    let done = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "hi there"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}});
    let body = done.to_string();
    let s = split(body.as_bytes(), true).unwrap();
    assert!(s.ends_with(DONE));
    let chunks = events(&s);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "x")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 3);
    let back: Value = serde_json::from_slice(&assemble(&s).unwrap()).unwrap();
    assert_eq!(back["choices"], done["choices"].clone().tap_logprobs());
    let no_usage = split(body.as_bytes(), false).unwrap();
    assert!(events(&no_usage).iter().all(|c| c.get("usage").is_none()));
    let bare = json!({"id": "x", "choices": []}).to_string();
    assert_eq!(split(bare.as_bytes(), true), Err(ConvertError::NoUsage));
    assert_eq!(split(b"[1]", false), Err(ConvertError::NotCompletion));
}

#[test]
fn scan_sees_done_errors_and_torn_events() {
    let mut s = StreamScan::default();
    assert!(s.feed(b"data: {\"choices\":[]}\n\n").is_none());
    assert!(!s.complete());
    s.feed(DONE);
    assert!(s.complete());
    let mut s = StreamScan::default();
    s.feed(b"data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n");
    assert!(!s.complete());
}

trait TapLogprobs {
    fn tap_logprobs(self) -> Value;
}

impl TapLogprobs for Value {
    /// The assembled choice also carries `logprobs: null`.
    fn tap_logprobs(mut self) -> Value {
        for c in self.as_array_mut().into_iter().flatten() {
            c["logprobs"] = Value::Null;
        }
        self
    }
}

#[test]
fn null_usage_is_dropped_only_where_it_closes_an_event() {
    let run = "data: {\"choices\":[{\"delta\":{\"content\":\"say ,\\\"usage\\\":null}\"}}],\"usage\":null}\n\n\
               event: x\r\ndata: {\"a\":1,\"usage\":null}\r\n\r\n\
               data: {\"usage\":null,\"b\":2}\n\n";
    let out = drop_null_usage(Bytes::from(run));
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "data: {\"choices\":[{\"delta\":{\"content\":\"say ,\\\"usage\\\":null}\"}}]}\n\n\
         event: x\r\ndata: {\"a\":1}\r\n\r\n\
         data: {\"usage\":null,\"b\":2}\n\n"
    );
    let plain = Bytes::from_static(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
    let same = drop_null_usage(plain.clone());
    assert_eq!(same.as_ptr(), plain.as_ptr(), "no copy when there is none");
}
