"""The official OpenAI Python SDK against the gateway on the shipped
policies: legacy text completions (plain, streamed, cut by max_tokens) and
a chat stream with stream_options.include_usage. Prints ALL OK."""

import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="sdk-completions-client", max_retries=0)

reply = client.completions.create(model="gpt-4o-mini", prompt="Say hello", max_tokens=50)
assert reply.object == "text_completion", reply
assert len(reply.choices) == 1 and reply.choices[0].text.strip(), reply
assert reply.choices[0].finish_reason == "stop", reply
assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
print("completion:", repr(reply.choices[0].text))

cut = client.completions.create(model="gpt-4o-mini", prompt="Say hello", max_tokens=2, n=2)
assert [c.index for c in cut.choices] == [0, 1], cut
assert all(c.finish_reason == "length" for c in cut.choices), cut

text, finishes, usage = "", [], None
for chunk in client.completions.create(
    model="gpt-4o", prompt="Stream a few words", max_tokens=50, stream=True,
    stream_options={"include_usage": True},
):
    assert chunk.object == "text_completion", chunk
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.text
        if c.finish_reason:
            finishes.append(c.finish_reason)
assert "Stream a few words" in text, text
assert finishes == ["stop"], finishes
assert usage is not None and usage.completion_tokens > 0, usage
print("streamed completion:", repr(text))

pieces, usage_chunks = [], []
for chunk in client.chat.completions.create(
    model="gpt-4o", stream=True, stream_options={"include_usage": True},
    messages=[{"role": "user", "content": "count these words"}],
):
    if chunk.usage is not None:
        usage_chunks.append(chunk)
    else:
        pieces.append(chunk.choices[0].delta.content or "")
assert len(usage_chunks) == 1, usage_chunks
last = usage_chunks[0]
assert last.choices == [], last
assert last.usage.prompt_tokens == 3, last.usage
assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
assert "count these words" in "".join(pieces)
print("chat stream usage:", last.usage)

print("ALL OK")
