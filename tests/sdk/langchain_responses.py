"""LangChain's ChatOpenAI, unmodified, through Switchyard on the shipped
policies: the Responses API (use_responses_api=True), invoked and streamed,
and chat completions streaming with stream_usage=True.
Usage: python3 langchain_responses.py BASE_URL MODEL."""
import sys

from langchain_openai import ChatOpenAI

base, model = sys.argv[1], sys.argv[2]

llm = ChatOpenAI(model=model, base_url=base, api_key="client-key", max_retries=0,
                 use_responses_api=True)
msg = llm.invoke("hello from langchain")
assert "hello from langchain" in msg.text, msg
print("responses ok:", msg.text)
text = "".join(chunk.text for chunk in llm.stream("stream via responses"))
assert "stream via responses" in text, text
print("responses stream ok:", text)

chat = ChatOpenAI(model=model, base_url=base, api_key="client-key", max_retries=0,
                  stream_usage=True)
chunks = list(chat.stream("count my tokens"))
text = "".join(c.text for c in chunks)
assert "count my tokens" in text, text
usage = None
for c in chunks:
    if c.usage_metadata:
        usage = c.usage_metadata
print("chat stream ok:", text, "usage:", usage)
print("ALL OK")
