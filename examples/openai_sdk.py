"""Drive Switchyard with the official OpenAI Python SDK.

Usage: python3 examples/openai_sdk.py [BASE_URL]   (default http://127.0.0.1:8080/v1)
Runs against the shipped policies (mock providers): chat, streaming chat,
embeddings (the SDK's default base64 encoding and float), and error handling.
Exits non-zero if anything does not behave like the OpenAI API.
"""
import sys

import openai
from openai import OpenAI

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/v1"
client = OpenAI(base_url=base, api_key="my-client-key", max_retries=0)

reply = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
)
assert "Say hello" in reply.choices[0].message.content, reply
print("chat:", reply.choices[0].message.content)

pieces = []
for chunk in client.chat.completions.create(
    model="gpt-4o", stream=True, messages=[{"role": "user", "content": "stream please"}]
):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
text = "".join(pieces)
assert "stream please" in text, text
print("stream:", text)

inputs = [f"document {i}" for i in range(40)]
emb = client.embeddings.create(model="text-embedding-3-small", input=inputs)
assert [d.index for d in emb.data] == list(range(40))
assert all(len(d.embedding) == 16 for d in emb.data)
again = client.embeddings.create(
    model="text-embedding-3-small", input=inputs[:3], encoding_format="float"
)
assert [round(x, 5) for x in again.data[2].embedding] == [round(x, 5) for x in emb.data[2].embedding]
print("embeddings:", len(emb.data), "x", len(emb.data[0].embedding))

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("expected NotFoundError")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e
    print("unknown model:", e.status_code, e.code)

models = [m.id for m in client.models.list()]
assert "gpt-4o-mini" in models, models
print("models:", models)
print("OK")
