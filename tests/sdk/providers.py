"""The official OpenAI Python SDK, unmodified, against routes served by
native Anthropic and Gemini upstreams (fakes of their public APIs) through
Switchyard. Usage: python3 providers.py BASE_URL. Exits non-zero on any
difference from what the OpenAI API would give."""
import json
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="client-key", max_retries=0)
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}]
weather = [{"role": "user", "content": "What is the weather in Paris?"}]

for model, served_by in [("via-anthropic", "claude"), ("via-gemini", "gem")]:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "hello there"}],
    )
    assert raw.headers["x-switchyard-provider"] == served_by, raw.headers
    reply = raw.parse()
    assert reply.object == "chat.completion", reply
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content, reply
    assert reply.choices[0].finish_reason == "stop", reply
    assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens > 0, reply

    chunks = list(client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream this please"}],
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text, chunks
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0, chunks[-1]
    assert len({c.id for c in chunks}) == 1, "one id per stream"

    reply = client.chat.completions.create(model=model, tools=tools, messages=weather)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls", reply
    assert call.type == "function" and call.function.name == "get_weather", call
    assert isinstance(json.loads(call.function.arguments), dict)

    name, args, call_id = None, "", None
    for c in client.chat.completions.create(model=model, tools=tools, stream=True, messages=weather):
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            call_id = tc.id or call_id
            name = (tc.function.name if tc.function and tc.function.name else name)
            args += tc.function.arguments or "" if tc.function else ""
    assert name == "get_weather" and call_id, (name, call_id)
    assert isinstance(json.loads(args), dict), args

    followup = client.chat.completions.create(
        model=model, tools=tools,
        messages=weather + [reply.choices[0].message.model_dump(exclude_none=True),
                            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}],
    )
    assert "sunny" in followup.choices[0].message.content, followup
    print(model, "ok:", followup.choices[0].message.content)

inputs = [f"document number {i}" for i in range(150)]
emb = client.embeddings.create(model="gemini-embed", input=inputs)
assert [d.index for d in emb.data] == list(range(150)), "input order"
assert len({len(d.embedding) for d in emb.data}) == 1
again = client.embeddings.create(model="gemini-embed", input=inputs[7:8], encoding_format="float")
assert [round(x, 4) for x in again.data[0].embedding] == [round(x, 4) for x in emb.data[7].embedding]
print("embeddings ok:", len(emb.data), "x", len(emb.data[0].embedding))
print("ALL OK")
