"""LangChain's ChatOpenAI(stream_usage=True) streaming through the gateway
on the shipped policies: the aggregated message carries usage_metadata.
Prints ALL OK."""

import sys

from langchain_openai import ChatOpenAI

llm = ChatOpenAI(model="gpt-4o", base_url=sys.argv[1], api_key="sdk-langchain-client",
                 stream_usage=True, max_retries=0)

total = None
for chunk in llm.stream("tell me about gateways"):
    total = chunk if total is None else total + chunk
assert total is not None
assert "tell me about gateways" in total.content, total.content
usage = total.usage_metadata
assert usage is not None, total
assert usage["input_tokens"] == 4, usage
assert usage["output_tokens"] > 0, usage
assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"], usage
print("langchain usage:", usage)

reply = llm.invoke("say hi")
assert reply.usage_metadata["input_tokens"] == 2, reply.usage_metadata
print("ALL OK")
