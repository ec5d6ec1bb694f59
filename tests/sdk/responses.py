"""The official OpenAI Python SDK, unmodified, on /v1/responses through
Switchyard. Usage: python3 responses.py BASE_URL MODEL FEATURES, FEATURES a
comma-separated subset of text,tools,stream,stream_usage,parse,state
(stream_usage: the final streamed response carries usage; state: store,
previous_response_id, retrieve, input_items and delete, served by the gateway on
translated routes). Exits non-zero on any
difference from what the OpenAI API would give."""
import json
import sys

from openai import OpenAI
from pydantic import BaseModel

client = OpenAI(base_url=sys.argv[1], api_key="client-key", max_retries=0)
model = sys.argv[2]
features = sys.argv[3].split(",")
tools = [{
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}]
ask = {"role": "user", "content": "What is the weather in Paris?"}

if "text" in features:
    r = client.responses.create(model=model, input="hello there", instructions="Be brief.")
    assert r.object == "response" and r.status == "completed", r
    assert r.id.startswith("resp_"), r.id
    assert "hello there" in r.output_text, r.output_text
    assert r.usage is not None and r.usage.total_tokens > 0, r.usage
    print("text ok:", r.output_text)

if "tools" in features:
    r = client.responses.create(model=model, tools=tools, input=[ask])
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather", r.output
    # The fakes read the city from the question; the mock fills in a plausible one.
    location = json.loads(calls[0].arguments)["location"]
    assert isinstance(location, str) and location, calls[0]
    follow = client.responses.create(
        model=model, tools=tools,
        input=[ask, calls[0].model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21C"}],
    )
    assert "sunny, 21C" in follow.output_text, follow.output_text
    with client.responses.stream(model=model, tools=tools, input=[ask]) as stream:
        args = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    call = [o for o in final.output if o.type == "function_call"][0]
    assert json.loads(args) == json.loads(call.arguments), (args, call)
    assert json.loads(args).get("location"), (args, call)
    print("tools ok:", follow.output_text)

if "stream" in features:
    with client.responses.stream(model=model, input="stream this please") as stream:
        kinds, deltas = [], ""
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas += event.delta
                assert event.snapshot.endswith(event.delta)
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert "response.output_text.done" in kinds and "response.output_item.done" in kinds, kinds
    assert deltas and final.output_text == deltas, (deltas, final.output_text)
    if "stream_usage" in features:
        assert final.usage is not None and final.usage.total_tokens > 0, final.usage
    raw = list(client.responses.create(model=model, input="raw events", stream=True))
    assert [e.sequence_number for e in raw] == list(range(len(raw))), raw
    print("stream ok:", final.output_text)

if "parse" in features:
    class City(BaseModel):
        city: str
        country: str

    r = client.responses.parse(model=model, input="Name a city", text_format=City)
    assert isinstance(r.output_parsed, City), r
    print("parse ok:", r.output_parsed)

if "state" in features:
    import openai
    first = client.responses.create(model=model, input="My name is Ada.")
    assert first.store is True, first
    again = client.responses.retrieve(first.id)
    assert again.id == first.id and again.output_text == first.output_text, again
    second = client.responses.create(model=model, input="What is my name?",
                                     previous_response_id=first.id)
    assert second.previous_response_id == first.id, second
    with client.responses.stream(model=model, input="And now?",
                                 previous_response_id=second.id) as stream:
        final = stream.get_final_response()
    assert final.previous_response_id == second.id, final
    assert client.responses.retrieve(final.id).output_text == final.output_text
    # The conversation that produced `final`, two items a page (the SDK
    # follows `has_more` with `after`), then newest first (the default).
    items = list(client.responses.input_items.list(final.id, order="asc", limit=2))
    texts = [i.content[0].text for i in items]
    assert len(items) == 5 and texts[0] == "My name is Ada." and texts[2] == "What is my name?" \
        and texts[4] == "And now?", texts
    assert [i.role for i in items] == ["user", "assistant", "user", "assistant", "user"], items
    assert len({i.id for i in items}) == 5, items
    newest = client.responses.input_items.list(final.id, limit=1)
    assert newest.data[0].id == items[4].id and newest.has_more, newest
    client.responses.delete(first.id)
    try:
        client.responses.retrieve(first.id)
        raise AssertionError("a deleted response was found")
    except openai.NotFoundError:
        pass
    try:
        client.responses.create(model=model, input="x", previous_response_id=first.id)
        raise AssertionError("a deleted response was continued")
    except openai.BadRequestError as e:
        assert e.code == "previous_response_not_found", e
    print("state ok:", final.output_text)

print("ALL OK")
