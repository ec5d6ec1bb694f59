"""The official OpenAI Python SDK's legacy completions through the gateway
to an OpenAI-compatible upstream (passed through): plain and streamed.
Usage: python3 completions_upstream.py BASE_URL MODEL. Prints ALL OK."""

import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="sdk-completions-client", max_retries=0)
model = sys.argv[2]

reply = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8)
assert reply.object == "text_completion", reply
assert reply.choices[0].text == " there was a gateway", reply
assert reply.usage.total_tokens == 9, reply.usage

text = "".join(
    c.choices[0].text
    for c in client.completions.create(model=model, prompt="Once upon a time", stream=True)
    if c.choices
)
assert text == " there was a gateway", text
print("ALL OK")
