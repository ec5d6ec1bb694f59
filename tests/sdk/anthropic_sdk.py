"""The official Anthropic Python SDK, unmodified, against the gateway's
/v1/messages: messages.create, messages.stream (text_stream,
get_final_message), tools (a call and its result, plain and streamed),
count_tokens where the route is native (an estimate, marked, elsewhere), errors
the SDK must raise as its own types (a server tool on a translated route), and
what a translated route accepts without effect (`top_k`, named in
`x-switchyard-ignored`).

Usage: anthropic_sdk.py BASE_URL NATIVE_ROUTE ROUTE...  (prints ALL OK; the
first ROUTE must be translated)
"""

import sys

import anthropic

base, native, routes = sys.argv[1], sys.argv[2], sys.argv[3:]
client = anthropic.Anthropic(base_url=base, api_key="sk-client-key", max_retries=0)

TOOLS = [{
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                     "required": ["location"]},
}]


def check_route(model):
    # create: one text block, a stop reason, integer usage.
    msg = client.messages.create(model=model, max_tokens=64,
                                 messages=[{"role": "user", "content": "Say hello"}])
    assert msg.type == "message" and msg.role == "assistant", msg
    assert msg.content[0].type == "text" and msg.content[0].text, msg
    assert msg.stop_reason == "end_turn", msg
    assert isinstance(msg.usage.output_tokens, int) and msg.usage.output_tokens > 0, msg

    # stream: text deltas add up to the final message's text.
    with client.messages.stream(model=model, max_tokens=64,
                                messages=[{"role": "user", "content": "Stream a few words"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.content[0].text == text, (text, final)
    assert final.stop_reason == "end_turn", final

    # tools: a call, then its result.
    ask = {"role": "user", "content": "What's the weather in Paris?"}
    msg = client.messages.create(model=model, max_tokens=64, tools=TOOLS, messages=[ask])
    assert msg.stop_reason == "tool_use", msg
    calls = [b for b in msg.content if b.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather", msg
    assert calls[0].input == {"location": "Paris"}, calls[0]
    answer = client.messages.create(model=model, max_tokens=64, tools=TOOLS, messages=[
        ask,
        {"role": "assistant", "content": msg.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id,
                                      "content": "18C and sunny"}]},
    ])
    assert answer.stop_reason == "end_turn", answer
    assert "18C and sunny" in answer.content[0].text, answer

    # tools, streamed: the SDK assembles the input from input_json_delta.
    with client.messages.stream(model=model, max_tokens=64, tools=TOOLS, messages=[ask]) as s:
        final = s.get_final_message()
    calls = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use" and calls, final
    assert calls[0].input == {"location": "Paris"}, calls[0]
    print(f"{model}: ok")


for route in routes:
    check_route(route)

count = client.messages.count_tokens(model=native,
                                     messages=[{"role": "user", "content": "one two three"}])
assert count.input_tokens == 3, count

# A route whose targets cannot count: the gateway's own estimate, marked.
for route in routes:
    if route != native:
        raw = client.messages.with_raw_response.count_tokens(
            model=route, messages=[{"role": "user", "content": "one two three"}])
        assert raw.headers["x-switchyard-token-count"] == "estimate", raw.headers
        assert raw.parse().input_tokens > 3, raw.parse()

try:
    client.messages.create(model="no-such-model", max_tokens=8,
                           messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("expected NotFoundError")
except anthropic.NotFoundError as e:
    assert e.body["error"]["type"] == "not_found_error", e.body

translated = routes[0]
assert translated != native
try:
    client.messages.create(model=translated, max_tokens=8,
                           tools=[{"type": "web_search_20250305", "name": "web_search"}],
                           messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("expected BadRequestError for a server tool on a translated route")
except anthropic.BadRequestError as e:
    assert "web_search_20250305" in e.message and f"`{translated}`" in e.message, e.message
    assert e.body["error"]["code"] == "unsupported_feature", e.body

# top_k has no place on a chat target: accepted, named, not sent.
raw = client.messages.with_raw_response.create(model=translated, max_tokens=8,
                                               extra_body={"top_k": 3},
                                               messages=[{"role": "user", "content": "hi"}])
assert raw.headers.get("x-switchyard-ignored") == "top_k", dict(raw.headers)
assert raw.parse().type == "message"

print("ALL OK")
