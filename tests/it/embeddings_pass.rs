//! Embeddings passed through: a request nothing needs the vectors of (no
//! cache for it, no repeated input) gets the upstream's answer byte for
//! byte with only `model` rewritten, asked in the client's own
//! `encoding_format`, its tokens still counted; one split in sub-batches
//! gets their items as they came, `index` shifted; cached and
//! deduplicated requests answer as before; an odd upstream answer gives
//! the error (or the answer) it gave before. Against a fake OpenAI upstream
//! over real HTTP whose answer bytes the test writes.

use crate::common;

use std::time::Duration;

use common::{FakeUpstream, Reply, Seen, TestGateway};
use serde_json::{Value, json};
use switchyard::api::embeddings::{decode_base64, encode_base64};

/// Numbers no `f32` holds: a parsed and re-printed answer cannot match.
const FLOATS: [&str; 3] = ["0.123456789012345", "-1.5e-7", "3"];

/// Vector `i` as `f32`s (what a base64 answer holds).
fn vector(i: usize) -> Vec<f32> {
    let mut v: Vec<f32> = FLOATS.iter().map(|x| x.parse().unwrap()).collect();
    v.push(i as f32);
    v
}

/// An answer's vector `i`, read as `f32`s.
fn vector_of(answer: &Value, i: usize) -> Vec<f32> {
    let numbers = answer["data"][i]["embedding"].as_array().unwrap();
    numbers.iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// The upstream's model in every answer, and what the gateway writes.
const UP_MODEL: &str = r#""model" : "up-emb-v2""#;

/// The plain answer for `n` inputs in `format`, in index order, written
/// the way a server may write it (spaces, key order, an extra field).
fn plain(n: usize, base64: bool, tokens: u64) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            let embedding = if base64 {
                format!("\"{}\"", encode_base64(&vector(i)))
            } else {
                format!("[{}, {i}]", FLOATS.join(","))
            };
            format!(r#"{{ "object":"embedding", "index": {i}, "embedding": {embedding} }}"#)
        })
        .collect();
    format!(
        "{{\"object\": \"list\", \"data\": [{}],\n {UP_MODEL}, \"usage\": {{\"prompt_tokens\": {tokens}, \"total_tokens\": {}}}, \"x_extra\": {{\"kept\": [1, \"]\"]}}}}\n",
        items.join(",\n  "),
        tokens + 1
    )
}

/// `body` in three chunks, cut mid-value.
fn chunked(body: String) -> Reply {
    let (a, rest) = body.split_at(body.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let parts = vec![a.to_string(), b.to_string(), c.to_string()];
    Reply::Chunks("application/json", parts, Duration::ZERO)
}

fn inputs(s: &Seen) -> usize {
    s.body["input"].as_array().map_or(1, Vec::len)
}

fn asked_base64(s: &Seen) -> bool {
    s.body["encoding_format"] == "base64"
}

/// An upstream answering the plain answer (3 tokens an input), or what
/// `odd` gives for a request.
async fn upstream(odd: fn(&Seen) -> Option<Reply>) -> FakeUpstream {
    FakeUpstream::start(move |s, _| async move {
        odd(&s)
            .unwrap_or_else(|| chunked(plain(inputs(&s), asked_base64(&s), 3 * inputs(&s) as u64)))
    })
    .await
}

const ROUTES: &str = "routes:
  emb:
    targets: [{provider: p0, model: up-emb}]
  cached:
    targets: [{provider: p0, model: up-emb}]
    cache: {enabled: true, ttl: 1h}
  split:
    targets: [{provider: p0, model: up-emb, max_batch_inputs: 2}]
  cached-split:
    targets: [{provider: p0, model: up-emb, max_batch_inputs: 2}]
    cache: {enabled: true, ttl: 1h}
";

/// Routes `emb` (no cache), `cached` (cached), `split` (2 inputs a call)
/// and `cached-split`, all on provider `p0`.
async fn gateway(up: &FakeUpstream) -> TestGateway {
    common::gateway(&(common::providers_yaml(&[up], "") + ROUTES)).await
}

const KEY: &str = "sk-emb-pass-0000000000000000000000000";

async fn embed(gw: &TestGateway, body: Value, no_cache: bool) -> reqwest::Response {
    let mut r = gw
        .http
        .post(format!("{}/v1/embeddings", gw.base))
        .json(&body);
    if no_cache {
        r = r.header("cache-control", "no-cache");
    }
    r.send().await.unwrap()
}

/// Prompt tokens counted for `route` and `key`, once they are `want`.
async fn prompt_tokens(gw: &TestGateway, key: &str, route: &str, want: f64) {
    let sample = format!(
        r#"switchyard_tokens_total{{key="{key}",kind="prompt",provider="p0",route="{route}"}}"#
    );
    common::eventually(async || gw.metric(&sample).await == want).await;
}

#[tokio::test]
async fn the_answer_is_the_upstreams_bytes_with_model_rewritten() {
    let up = upstream(|_| None).await;
    let yaml = common::providers_yaml(&[&up], "")
        + ROUTES
        + "keys:\n  k:\n    secret_env: EMB_PASS_KEY\n    budget: {period: day, tokens: 1000}\n";
    let gw = common::gateway_env(&yaml, &[("EMB_PASS_KEY", KEY)]).await;
    for (format, upstream_asked) in [
        (None, "float"),
        (Some("float"), "float"),
        (Some("base64"), "base64"),
    ] {
        let mut body = json!({"model": "emb", "input": ["a", "b", "c"], "user": "u-1"});
        if let Some(f) = format {
            body["encoding_format"] = json!(f);
        }
        let calls = up.calls();
        let r = gw
            .http
            .post(format!("{}/v1/embeddings", gw.base))
            .bearer_auth(KEY);
        let r = r.json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(r.headers().get("x-switchyard-cache").is_none());
        let got = r.text().await.unwrap();
        // Asked in the client's encoding, with everything else it sent.
        assert_eq!(up.calls(), calls + 1);
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.body["encoding_format"], upstream_asked, "{format:?}");
        assert_eq!(seen.body["input"], json!(["a", "b", "c"]));
        assert_eq!(
            (&seen.body["model"], &seen.body["user"]),
            (&json!("up-emb"), &json!("u-1"))
        );
        // Byte for byte, `model` aside.
        let sent = plain(3, upstream_asked == "base64", 9);
        assert_eq!(
            got,
            sent.replace(UP_MODEL, r#""model" : "emb""#),
            "{format:?}"
        );
        let v: Value = serde_json::from_str(&got).unwrap();
        if upstream_asked == "base64" {
            let d = decode_base64(v["data"][2]["embedding"].as_str().unwrap()).unwrap();
            assert_eq!(d, vector(2));
        } else {
            assert_eq!(
                v["data"][1]["embedding"].to_string(),
                "[0.123456789012345,-1.5e-7,3,1]"
            );
        }
        assert_eq!(v["usage"], json!({"prompt_tokens": 9, "total_tokens": 10}));
    }
    // Tokens counted and charged to the key's budget from the
    // passed-through `usage`.
    prompt_tokens(&gw, "k", "emb", 27.0).await;
    let left = r#"switchyard_budget_remaining{key="k",unit="tokens"}"#;
    common::eventually(async || gw.metric(left).await == 973.0).await;
    let inputs = r#"switchyard_fanout_batch_inputs_sum{route="emb"}"#;
    assert_eq!(gw.metric(inputs).await, 9.0);
    let calls = r#"switchyard_fanout_sub_batches_total{route="emb"}"#;
    assert_eq!(gw.metric(calls).await, 3.0);
    gw.stop().await;
}

#[tokio::test]
async fn sub_batches_are_joined_as_they_came_with_index_shifted() {
    let up = upstream(|_| None).await;
    let gw = gateway(&up).await;
    let r = embed(
        &gw,
        json!({"model": "split", "input": ["a", "b", "c", "d", "e"]}),
        false,
    )
    .await;
    assert_eq!(r.status(), 200);
    let got = r.text().await.unwrap();
    // Three calls of 2, 2 and 1 inputs, each asked for floats.
    let seen = up.requests();
    let sizes: Vec<usize> = seen.iter().map(inputs).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(seen.iter().all(|s| s.body["encoding_format"] == "float"));
    // Each call's items as they came, `index` counting on over the calls.
    let items = |n: usize| {
        let answer = plain(n, false, 0);
        let start = answer.find('[').unwrap() + 1;
        answer[start..answer.find("],\n").unwrap()].to_string()
    };
    let shifted = items(2)
        .replace("\"index\": 0", "\"index\": 2")
        .replace("\"index\": 1", "\"index\": 3");
    let last = items(1).replace("\"index\": 0", "\"index\": 4");
    let want = format!(
        r#"{{"object":"list","data":[{},{shifted},{last}],"model":"split","usage":{{"prompt_tokens":15,"total_tokens":18}}}}"#,
        items(2)
    );
    assert_eq!(got, want);
    let v: Value = serde_json::from_str(&got).unwrap();
    for i in 0..5 {
        assert_eq!(v["data"][i]["index"], i);
    }
    assert_eq!(
        v["data"][3]["embedding"].to_string(),
        "[0.123456789012345,-1.5e-7,3,1]"
    );
    prompt_tokens(&gw, "_unknown", "split", 15.0).await;
    let calls = r#"switchyard_fanout_sub_batches_total{route="split"}"#;
    assert_eq!(gw.metric(calls).await, 3.0);

    // One sub-batch answered in another shape: every vector written anew.
    let up = upstream(|s| {
        (s.body["input"][0] == "c").then(|| {
            let v: Value = serde_json::from_str(&plain(inputs(s), false, 2)).unwrap();
            let mut data = v["data"].as_array().unwrap().clone();
            data.reverse();
            chunked(json!({"data": data, "usage": v["usage"]}).to_string())
        })
    })
    .await;
    let gw = gateway(&up).await;
    let r = embed(
        &gw,
        json!({"model": "split", "input": ["a", "b", "c", "d"]}),
        false,
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "split");
    for i in 0..4 {
        assert_eq!(v["data"][i]["index"], i);
        assert_eq!(vector_of(&v, i), vector(i % 2), "{v}");
    }
    assert_eq!(v["data"][0]["embedding"][0], 0.12345679104328156);
    assert_eq!(v["usage"], json!({"prompt_tokens": 8, "total_tokens": 10}));
}

#[tokio::test]
async fn cached_split_and_repeated_inputs_answer_as_before() {
    let up = upstream(|_| None).await;
    let gw = gateway(&up).await;
    // Parsed answers as before: asked in base64, the vectors printed as
    // the `f32`s they are, `model` the route's, `data` in input order.
    let r = embed(&gw, json!({"model": "cached", "input": ["a", "b"]}), false).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    assert!(asked_base64(&up.requests().pop().unwrap()));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "cached");
    assert!(v.get("x_extra").is_none(), "{v}");
    assert_eq!(vector_of(&v, 1), vector(1));
    // Printed as the `f32` it is, not as the upstream's decimal.
    assert_eq!(v["data"][1]["embedding"][0], 0.12345679104328156);
    assert_eq!(v["usage"], json!({"prompt_tokens": 6, "total_tokens": 7}));
    let r = embed(&gw, json!({"model": "cached", "input": ["b", "a"]}), false).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    let v: Value = r.json().await.unwrap();
    assert_eq!(vector_of(&v, 0), vector(1));
    assert_eq!(v["usage"]["prompt_tokens"], 0);
    assert_eq!(up.calls(), 1);

    // Cached and split in two calls: joined in order, usage summed.
    let body = json!({"model": "cached-split", "input": ["a", "b", "c"]});
    let r = embed(&gw, body, false).await;
    assert_eq!(up.calls(), 3);
    assert!(up.requests().iter().skip(1).all(asked_base64));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "cached-split");
    assert!(v.get("x_extra").is_none(), "{v}");
    assert_eq!(vector_of(&v, 2), vector(0));
    assert_eq!(v["data"][2]["index"], 2);
    assert_eq!(v["data"][2]["embedding"][0], 0.12345679104328156);
    assert_eq!(v["usage"], json!({"prompt_tokens": 9, "total_tokens": 11}));
    prompt_tokens(&gw, "_unknown", "cached-split", 9.0).await;

    // A repeated input is sent once (as before), so not passed through.
    let r = embed(
        &gw,
        json!({"model": "emb", "input": ["x", "y", "x"]}),
        false,
    )
    .await;
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.body["input"], json!(["x", "y"]));
    assert!(asked_base64(&seen));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"][2]["embedding"], v["data"][0]["embedding"]);
    assert_eq!(v["data"][2]["index"], 2);
    assert_eq!(v["usage"], json!({"prompt_tokens": 6, "total_tokens": 7}));
    gw.stop().await;
}

/// What the upstream answers requests whose first input names an odd case.
fn odd(s: &Seen) -> Option<Reply> {
    let n = inputs(s);
    let b64 = asked_base64(s);
    let text = |t: String| Some(chunked(t));
    match s.body["input"][0].as_str()? {
        "error" => {
            text(r#"{"error": {"message": "quota exceeded", "type": "insufficient_quota"}}"#.into())
        }
        "short" => text(plain(n - 1, b64, 1)),
        "html" => Some(Reply::Chunks(
            "application/json",
            vec!["<html>oops</html>".into()],
            Duration::ZERO,
        )),
        // Floats whatever was asked (a reader takes both), one not a number.
        "null" => text(plain(n, false, 1).replace("\"embedding\": [", "\"embedding\": [null,")),
        // Not the plain answer but a good one: read and written as before.
        "reversed" => {
            let v: Value = serde_json::from_str(&plain(n, b64, 4)).unwrap();
            let mut data = v["data"].as_array().unwrap().clone();
            data.reverse();
            text(json!({"data": data, "usage": v["usage"]}).to_string())
        }
        "no-usage" => {
            let v: Value = serde_json::from_str(&plain(n, b64, 4)).unwrap();
            text(json!({"data": v["data"]}).to_string())
        }
        _ => None,
    }
}

#[tokio::test]
async fn an_odd_answer_gives_what_it_gave_before() {
    let up = upstream(odd).await;
    // A breaker that stays closed: each request meets the same upstream.
    let breaker = "    breaker: { failure_threshold: 1000, open_for: 1s }\n";
    let gw = common::gateway(&(common::providers_yaml(&[&up], breaker) + ROUTES)).await;
    for case in ["error", "short", "html", "null", "reversed", "no-usage"] {
        let body = json!({"model": "cached", "input": [case, format!("{case}-2")]});
        // `cached` with `no-cache` is passed through; without, it is the
        // per-item flow as before (asked in base64, parsed).
        let before = embed(&gw, body.clone(), false).await;
        assert!(asked_base64(&up.requests().pop().unwrap()), "{case}");
        let now = embed(&gw, body, true).await;
        assert!(!asked_base64(&up.requests().pop().unwrap()), "{case}");
        assert_eq!(now.status(), before.status(), "{case}");
        let good = matches!(case, "reversed" | "no-usage");
        assert_eq!(now.status().is_success(), good, "{case}: {}", now.status());
        let (now, before): (Value, Value) =
            (now.json().await.unwrap(), before.json().await.unwrap());
        let fault = match case {
            "error" => "missing 'data' array",
            "short" => "expected 2 embeddings, upstream returned 1",
            "html" => "invalid JSON",
            "null" => "non-numeric embedding value",
            _ => "",
        };
        if !good {
            let message = now["error"]["message"].as_str().unwrap();
            assert!(message.contains(fault), "{case}: {now}");
        }
        let name = |v: &Value| v["error"]["message"].as_str().map(str::to_owned);
        assert_eq!(name(&now), name(&before), "{case}");
        if good {
            assert_eq!(now, before, "{case}");
            assert_eq!(now["data"][0]["index"], 0);
            assert_eq!(now["data"][0]["embedding"][0], 0.12345679104328156);
        }
    }
    gw.stop().await;
}

/// Every shape `input` may take reaches the upstream as sent (token arrays
/// too); every other gets its 400 before any upstream call.
#[tokio::test]
async fn inputs_of_every_shape_pass_and_bad_ones_get_their_error() {
    let up = upstream(|_| None).await;
    let gw = gateway(&up).await;
    let good = [
        json!("one text"),
        json!(["a", "b"]),
        json!([1, 2, 3]),
        json!([[1, 2], [3]]),
        json!(["a", [4, 5]]),
    ];
    for input in &good {
        let resp = embed(&gw, json!({"model": "emb", "input": input}), false).await;
        assert_eq!(resp.status(), 200, "{input}");
        let sent = up.requests().pop().unwrap().body["input"].clone();
        let want = if input.is_string() || input[0].is_number() {
            json!([input])
        } else {
            input.clone()
        };
        // A single text or token list may go out as itself or in a list of one.
        assert!(sent == *input || sent == want, "{input}: sent {sent}");
    }
    let calls = up.requests().len();
    let shapes = "'input' must be a string, an array of strings, an array of token ids or an array of token arrays.";
    for (input, message) in [
        (json!(""), "'input' must not be an empty string."),
        (json!([]), "'input' must not be an empty array."),
        (json!(["a", ""]), "'input' must not contain empty strings."),
        (json!([[]]), "'input' token arrays must not be empty."),
        (
            json!([[1, -2]]),
            "'input' token arrays must hold non-negative integer token ids.",
        ),
        (
            json!([-1]),
            "'input' token arrays must hold non-negative integer token ids.",
        ),
        (json!(["a", 1]), shapes),
        (json!(["a", {"b": 1}]), shapes),
        (json!(7), shapes),
    ] {
        let resp = embed(&gw, json!({"model": "emb", "input": input}), false).await;
        assert_eq!(resp.status(), 400, "{input}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["message"], message, "{input}");
        assert_eq!(e["error"]["type"], "invalid_request_error", "{input}");
    }
    assert_eq!(
        up.requests().len(),
        calls,
        "a bad input reached the upstream"
    );
    gw.stop().await;
}
