//! Unit tests of the chat stream -> Responses events translation.

use serde_json::{Value, json};

use super::*;
use crate::api::sse::SseDecoder;

fn chunk(delta: Value, finish: Value) -> String {
    let c = json!({"id": "c", "object": "chat.completion.chunk", "created": 9, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

/// Feeds `wire` split at `split`, returns (event name, payload) pairs.
fn run(wire: &str, split: usize) -> Vec<(String, Value)> {
    let mut t = ChatToResponses::new(Echo::of(&Map::new()), 1);
    let mut out = Vec::new();
    out.extend_from_slice(&t.feed(&wire.as_bytes()[..split]).unwrap());
    out.extend_from_slice(&t.feed(&wire.as_bytes()[split..]).unwrap());
    out.extend_from_slice(&t.finish());
    SseDecoder::new()
        .decode(&out)
        .into_iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["type"], e.event.as_str());
            (e.event, v)
        })
        .collect()
}

use serde_json::Map;

#[test]
fn text_stream_follows_the_documented_sequence() {
    let usage = json!({"id": "c", "created": 9, "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}});
    let wire = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
        chunk(json!({}), json!("stop")),
        format!("data: {usage}\n\n"),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    for split in [0, 7, wire.len() / 2, wire.len()] {
        let events = run(&wire, split);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, (_, v)) in events.iter().enumerate() {
            assert_eq!(v["sequence_number"], i as u64);
        }
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[6].1["text"], "Hello");
        let done = &events[9].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["id"], events[0].1["response"]["id"]);
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["input_tokens"], 4);
        assert_eq!(done["usage"]["total_tokens"], 6);
    }
}

#[test]
fn tool_calls_stream_as_function_call_items() {
    let call = |i: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut f = json!({"arguments": args});
        if let Some(n) = name {
            f["name"] = json!(n);
        }
        let mut tc = json!({"index": i, "function": f});
        if let Some(id) = id {
            tc["id"] = json!(id);
            tc["type"] = json!("function");
        }
        chunk(json!({"tool_calls": [tc]}), Value::Null)
    };
    let wire = [
        chunk(json!({"content": "Let me check."}), Value::Null),
        call(0, Some("call_a"), Some("get_weather"), ""),
        call(0, None, None, "{\"city\":"),
        call(0, None, None, "\"Paris\"}"),
        call(1, Some("call_b"), Some("get_time"), "{}"),
        chunk(json!({}), json!("tool_calls")),
    ]
    .concat();
    // No [DONE]: the end of the chat stream closes the response.
    let events = run(&wire, wire.len());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(at("response.output_item.done") < at("response.function_call_arguments.delta"));
    let args_done: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.done")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(args_done.len(), 2);
    assert_eq!(args_done[0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(args_done[0]["output_index"], 1);
    assert_eq!(args_done[1]["arguments"], "{}");
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    let output = done["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[1]["call_id"], "call_a");
    assert_eq!(output[1]["name"], "get_weather");
    assert_eq!(output[2]["call_id"], "call_b");
    assert!(done["response"]["usage"].is_null());
}

#[test]
fn a_cut_answer_is_incomplete_and_garbage_is_refused() {
    let wire = [
        chunk(json!({"content": "a"}), json!("length")),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    let events = run(&wire, 3);
    let (last, v) = events.last().unwrap();
    assert_eq!(last, "response.incomplete");
    assert_eq!(
        v["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    let mut t = ChatToResponses::new(Echo::default(), 1);
    assert!(matches!(
        t.feed(b"data: <html>\n\n"),
        Err(ResponsesError::BadAnswer(_))
    ));
}

#[test]
fn reasoning_streams_as_a_reasoning_item_before_the_message() {
    let wire = [
        chunk(
            json!({"role": "assistant", "reasoning_content": "think "}),
            Value::Null,
        ),
        chunk(json!({"reasoning_content": "hard"}), Value::Null),
        chunk(json!({"content": "42"}), Value::Null),
        chunk(json!({}), json!("stop")),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    let echo = Echo::of(
        json!({"reasoning": {"effort": "high", "summary": "auto"}})
            .as_object()
            .unwrap(),
    );
    let mut t = ChatToResponses::new(echo, 1);
    let mut out = t.feed(wire.as_bytes()).unwrap().to_vec();
    out.extend_from_slice(&t.finish());
    let events: Vec<(String, Value)> = SseDecoder::new()
        .decode(&out)
        .into_iter()
        .map(|e| (e.event, serde_json::from_str(&e.data).unwrap()))
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[2..12],
        [
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
        ]
    );
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["type"], "reasoning");
    assert_eq!(done["output"][0]["content"][0]["text"], "think hard");
    assert_eq!(done["output"][1]["content"][0]["text"], "42");
    let seqs: Vec<u64> = events
        .iter()
        .map(|(_, v)| v["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    // Not asked: no reasoning item.
    let events = run(&wire, 3);
    assert!(events.iter().all(|(_, v)| v["item"]["type"] != "reasoning"));
}

#[test]
fn a_custom_tool_call_streams_its_whole_input_once_the_arguments_are_whole() {
    let echo = Echo::of(
        json!({"tools": [{"type": "custom", "name": "exec"}]})
            .as_object()
            .unwrap(),
    );
    let call = |args: &str, first: bool| {
        let mut tc = json!({"index": 0, "function": {"arguments": args}});
        if first {
            tc["id"] = json!("call_9");
            tc["function"]["name"] = json!("exec");
        }
        chunk(json!({"tool_calls": [tc]}), Value::Null)
    };
    let wire = [
        call("", true),
        call("{\"input\":", false),
        call("\"ls -la\"}", false),
        chunk(json!({}), json!("tool_calls")),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    let mut t = ChatToResponses::new(echo, 1);
    let out = t.feed(wire.as_bytes()).unwrap();
    let events: Vec<(String, Value)> = SseDecoder::new()
        .decode(&out)
        .into_iter()
        .map(|e| (e.event, serde_json::from_str(&e.data).unwrap()))
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"response.function_call_arguments.delta"));
    let delta = events
        .iter()
        .find(|(n, _)| n == "response.custom_tool_call_input.delta")
        .unwrap();
    assert_eq!(delta.1["delta"], "ls -la");
    let done = &events.last().unwrap().1["response"]["output"][0];
    assert_eq!(done["type"], "custom_tool_call");
    assert_eq!(done["input"], "ls -la");
    assert_eq!(done["name"], "exec");
}
