//! The agent request fixtures (tests/it/fixtures/agents/: captured from the
//! real CLIs, README.md, and hand-built, HANDMADE.md), and checks that
//! an answer follows its API's documented shape: a Message (content blocks,
//! stop reason, usage) or a Messages event stream assembled into one; a
//! Responses object (output items, status, usage) or a Responses event
//! stream (sequence numbers, item events paired) assembled into one. Each
//! check panics with the offending answer.

use serde_json::{Map, Value, json};

/// One recorded request: where it goes, the headers that matter, the body.
pub struct Fixture {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// Headers a fixture's client sent that the test's own client sets (or
/// must not: a `zstd` `accept-encoding` would get answers it cannot read).
const NOT_REPLAYED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "connection",
    "accept-encoding",
];

/// Loads `tests/it/fixtures/agents/<name>.json` (the body, its `model` set
/// to `route`) and `<name>.headers.json` (path and headers).
pub fn fixture(name: &str, route: &str) -> Fixture {
    let dir = format!("{}/tests/it/fixtures/agents", env!("CARGO_MANIFEST_DIR"));
    let read = |file: String| -> Value {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let mut body = read(format!("{dir}/{name}.json"));
    body["model"] = json!(route);
    let meta = read(format!("{dir}/{name}.headers.json"));
    let headers = meta["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.as_str().unwrap_or_default().to_string(),
            )
        })
        .filter(|(k, _)| !NOT_REPLAYED.contains(&k.as_str()))
        .collect();
    Fixture {
        path: meta["path"].as_str().unwrap().to_string(),
        headers,
        body,
    }
}

/// Named SSE events of a body, each with its JSON data.
pub fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let v = serde_json::from_str(&data)
                .unwrap_or_else(|_| panic!("event data is not JSON: {e}"));
            (name, v)
        })
        .collect()
}

const STOP_REASONS: &[&str] = &[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
];

/// A Messages API `Message`, checked block by block.
pub fn check_message(m: &Value) {
    assert_eq!(m["type"], "message", "{m}");
    assert!(
        m["id"].as_str().is_some_and(|i| i.starts_with("msg")),
        "{m}"
    );
    assert_eq!(m["role"], "assistant", "{m}");
    assert!(m["model"].is_string(), "{m}");
    let blocks = m["content"].as_array().unwrap_or_else(|| panic!("{m}"));
    for b in blocks {
        let ok = match b["type"].as_str() {
            Some("text") => b["text"].is_string(),
            Some("thinking") => b["thinking"].is_string() && b["signature"].is_string(),
            Some("tool_use") => {
                b["id"].is_string() && b["name"].is_string() && b["input"].is_object()
            }
            _ => false,
        };
        assert!(ok, "malformed block {b} in {m}");
    }
    let stop = m["stop_reason"].as_str().unwrap_or_default();
    assert!(STOP_REASONS.contains(&stop), "stop_reason of {m}");
    if stop == "tool_use" {
        assert!(blocks.iter().any(|b| b["type"] == "tool_use"), "{m}");
    }
    for k in ["input_tokens", "output_tokens"] {
        assert!(m["usage"][k].is_u64(), "usage.{k} of {m}");
    }
}

/// A Messages event stream assembled into the `Message` it describes,
/// checking Anthropic's order: `message_start` first, blocks started,
/// deltaed and stopped by index, `message_delta` then `message_stop` last.
pub fn message_from_stream(events: &[(String, Value)]) -> Value {
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    let mut message = events[0].1["message"].clone();
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Option<usize> = None;
    let mut json_parts: Map<String, Value> = Map::new();
    for (name, data) in events {
        assert_eq!(data["type"], name.as_str(), "{data}");
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "a block started before the last stopped");
                let i = data["index"].as_u64().unwrap() as usize;
                assert_eq!(i, blocks.len(), "block indexes count up");
                blocks.push(data["content_block"].clone());
                open = Some(i);
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(i), "a delta for a block not open");
                let d = &data["delta"];
                let b = &mut blocks[i];
                match d["type"].as_str() {
                    Some("text_delta") => append(b, "text", &d["text"]),
                    Some("thinking_delta") => append(b, "thinking", &d["thinking"]),
                    Some("signature_delta") => b["signature"] = d["signature"].clone(),
                    Some("input_json_delta") => {
                        let part = json_parts.entry(i.to_string()).or_insert(json!(""));
                        let joined = format!(
                            "{}{}",
                            part.as_str().unwrap(),
                            d["partial_json"].as_str().unwrap()
                        );
                        *part = json!(joined);
                    }
                    other => panic!("unknown delta {other:?}"),
                }
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open.take(), Some(i));
                if let Some(Value::String(s)) = json_parts.get(&i.to_string()) {
                    blocks[i]["input"] = serde_json::from_str(s).expect("tool input is JSON");
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                for (k, v) in data["usage"].as_object().into_iter().flatten() {
                    message["usage"][k] = v.clone();
                }
            }
            "message_start" | "message_stop" | "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(open.is_none(), "a block was never stopped");
    message["content"] = Value::Array(blocks);
    check_message(&message);
    message
}

fn append(block: &mut Value, key: &str, piece: &Value) {
    let joined = format!(
        "{}{}",
        block[key].as_str().unwrap_or_default(),
        piece.as_str().expect("a text piece")
    );
    block[key] = json!(joined);
}

/// A Responses API object, checked item by item; `translated`: the
/// gateway wrote it (its usage also carries cache writes).
pub fn check_response(r: &Value, translated: bool) {
    assert_eq!(r["object"], "response", "{r}");
    assert!(
        r["id"].as_str().is_some_and(|i| i.starts_with("resp")),
        "{r}"
    );
    assert!(
        matches!(r["status"].as_str(), Some("completed" | "incomplete")),
        "{r}"
    );
    for item in r["output"].as_array().unwrap_or_else(|| panic!("{r}")) {
        let ok = match item["type"].as_str() {
            Some("message") => {
                item["role"] == "assistant"
                    && item["content"].as_array().is_some_and(|c| {
                        c.iter()
                            .all(|p| p["type"] == "output_text" && p["text"].is_string())
                    })
            }
            Some("function_call") => {
                item["call_id"].is_string()
                    && item["name"].is_string()
                    && item["arguments"]
                        .as_str()
                        .is_some_and(|a| serde_json::from_str::<Value>(a).is_ok())
            }
            Some("custom_tool_call") => {
                item["call_id"].is_string() && item["name"].is_string() && item["input"].is_string()
            }
            Some("reasoning") => {
                item["id"].as_str().is_some_and(|i| i.starts_with("rs"))
                    && item["summary"].is_array()
            }
            _ => false,
        };
        assert!(ok, "malformed item {item} in {r}");
    }
    for k in ["input_tokens", "output_tokens", "total_tokens"] {
        assert!(r["usage"][k].is_u64(), "usage.{k} of {r}");
    }
    assert!(
        r["usage"]["input_tokens_details"]["cached_tokens"].is_u64(),
        "{r}"
    );
    if translated {
        assert!(
            r["usage"]["input_tokens_details"]["cache_write_tokens"].is_u64(),
            "{r}"
        );
        assert!(
            r.get("user").is_none_or(|u| !u.is_null()),
            "user omitted: {r}"
        );
        for t in r["tools"].as_array().into_iter().flatten() {
            assert!(t["type"] != "function" || t["strict"].is_boolean(), "{t}");
        }
    }
}

/// A Responses event stream's final response, checking the sequence
/// numbers count up from 0, `response.created` comes first, the stream ends
/// with `response.completed` (or `.incomplete`), and every item added is
/// done.
pub fn response_from_stream(events: &[(String, Value)], translated: bool) -> Value {
    assert_eq!(
        events.first().map(|(n, _)| n.as_str()),
        Some("response.created")
    );
    let (last, data) = events.last().unwrap();
    assert!(
        last == "response.completed" || last == "response.incomplete",
        "{last}"
    );
    let mut added = Vec::new();
    for (i, (name, d)) in events.iter().enumerate() {
        assert_eq!(d["type"], name.as_str(), "{d}");
        assert_eq!(d["sequence_number"], i as u64, "{d}");
        match name.as_str() {
            "response.output_item.added" => added.push(d["output_index"].clone()),
            "response.output_item.done" => {
                let at = added.iter().position(|a| *a == d["output_index"]);
                assert!(at.is_some(), "done before added: {d}");
                added.remove(at.unwrap());
            }
            _ => {}
        }
    }
    assert!(added.is_empty(), "items never done: {added:?}");
    let response = data["response"].clone();
    check_response(&response, translated);
    response
}
