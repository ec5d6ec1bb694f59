"""Retrieval ingest through Switchyard, with the official OpenAI Python SDK.

Usage: python3 examples/rag_ingest.py [BASE_URL] [--docs N] [--batch N] [--baseline-docs N]
       (default BASE_URL http://127.0.0.1:8080/v1, 5000 documents, batches of 512)

Embeds a generated corpus of N documents through the gateway in large
batches, twice: cold (every document new: the gateway splits each batch into
the route's sub-batches and sends them upstream in parallel) and warm (the
same documents again: answered from the gateway's per-input cache). For each
pass it prints documents per second, and the sub-batches sent upstream and
the cache hit rate read from the gateway's /metrics.

Next to that, the baseline: the same corpus sent one request per document,
one at a time, straight to the upstream, as a naive ingest loop does. The
shipped policies use the built-in `mock` provider, which has no HTTP
endpoint, so the baseline's upstream is a small OpenAI-compatible embeddings
server this script starts on 127.0.0.1 that waits the same per-call latency
as the mock route (`latency` of `mock-embedder` in policies/10-providers.yaml,
20 ms) before answering. It is timed on the first --baseline-docs documents
(default 500) and projected to the whole corpus.

Runs offline on the shipped policies: start the gateway with
`cargo run --release -- serve --policies policies`, then run this script.
Exits non-zero if an answer is wrong (a missing or misplaced vector, or a
warm vector that differs from the cold one).
"""
import argparse
import json
import random
import re
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from openai import OpenAI

ROUTE = "text-embedding-3-small"
POLICY = Path(__file__).resolve().parent.parent / "policies" / "10-providers.yaml"

WORDS = (
    "gateway cache embedding vector retrieval latency provider failover batch token "
    "budget circuit breaker document index query rerank stream policy replica region "
    "shard cluster throughput request response timeout retry backoff jitter quota key"
).split()


def mock_latency_ms():
    """The `latency` of mock-embedder in the shipped policies (20 ms)."""
    try:
        text = POLICY.read_text()
    except OSError:
        return 20.0, "default"
    block = re.search(r"^  mock-embedder:\n((?:    .*\n|\s*\n)*)", text, re.M)
    found = block and re.search(r"^\s+latency:\s*(\d+(?:\.\d+)?)\s*(ms|s)\b", block.group(1), re.M)
    if not found:
        return 20.0, "default"
    value = float(found.group(1)) * (1000.0 if found.group(2) == "s" else 1.0)
    return value, "mock-embedder in policies/10-providers.yaml"


def corpus(n, run):
    """n documents of 30-90 words; `run` makes this run's corpus new to the cache."""
    rng = random.Random(run)
    return [
        f"[{run}-{i}] " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 90)))
        for i in range(n)
    ]


def scrape(metrics_url):
    """Embedding cache hits, misses and sub-batches of ROUTE from /metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()

    def value(name, labels):
        pattern = re.escape(name) + r"\{" + re.escape(labels) + r"\} (\S+)"
        m = re.search(pattern, text)
        return float(m.group(1)) if m else 0.0

    per_input = f'kind="embeddings",route="{ROUTE}"'
    return {
        "hits": value("switchyard_cache_hits_total", per_input),
        "misses": value("switchyard_cache_misses_total", per_input),
        "sub_batches": value("switchyard_fanout_sub_batches_total", f'route="{ROUTE}"'),
    }


def through_gateway(client, docs, batch, metrics_url):
    before = scrape(metrics_url)
    vectors, requests = [], 0
    start = time.perf_counter()
    for i in range(0, len(docs), batch):
        part = docs[i : i + batch]
        reply = client.embeddings.create(model=ROUTE, input=part, encoding_format="float")
        requests += 1
        if [d.index for d in reply.data] != list(range(len(part))):
            raise SystemExit(f"batch at {i}: answers out of order or missing")
        vectors.extend(d.embedding for d in reply.data)
    seconds = time.perf_counter() - start
    after = scrape(metrics_url)
    hits = after["hits"] - before["hits"]
    lookups = hits + after["misses"] - before["misses"]
    return {
        "docs": len(docs),
        "seconds": seconds,
        "requests": requests,
        "sub_batches": int(after["sub_batches"] - before["sub_batches"]),
        "hit_rate": hits / lookups if lookups else None,
        "vectors": vectors,
    }


class FakeEmbeddings(BaseHTTPRequestHandler):
    """POST /v1/embeddings like OpenAI's, after the mock route's latency."""

    latency_s = 0.02
    protocol_version = "HTTP/1.1"
    # Headers and body go out as written: no Nagle wait against delayed ACKs.
    disable_nagle_algorithm = True

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        time.sleep(self.latency_s)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [len(t) / 100.0] * 16}
            for i, t in enumerate(inputs)
        ]
        out = json.dumps(
            {"object": "list", "data": data, "model": body["model"],
             "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def straight_to_upstream(docs, latency_ms):
    FakeEmbeddings.latency_s = latency_ms / 1000.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEmbeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="upstream-key",
                    max_retries=0)
    try:
        start = time.perf_counter()
        for doc in docs:
            reply = client.embeddings.create(model=ROUTE, input=doc, encoding_format="float")
            if len(reply.data) != 1:
                raise SystemExit("the baseline upstream answered wrongly")
        return time.perf_counter() - start
    finally:
        server.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base_url", nargs="?", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--docs", type=int, default=5000, help="documents in the corpus (5000)")
    ap.add_argument("--batch", type=int, default=512, help="documents per gateway request (512)")
    ap.add_argument("--baseline-docs", type=int, default=500,
                    help="documents timed one request each straight to the upstream (500)")
    args = ap.parse_args()
    base = args.base_url.rstrip("/")
    metrics_url = re.sub(r"/v1$", "", base) + "/metrics"
    run = "%08x" % random.getrandbits(32)
    docs = corpus(args.docs, run)
    latency_ms, latency_from = mock_latency_ms()
    client = OpenAI(base_url=base, api_key="rag-ingest", max_retries=2)

    print(f"Switchyard retrieval ingest: {len(docs)} documents (run {run}), route {ROUTE}, "
          f"batches of {args.batch}")
    print(f"upstream per-call latency: {latency_ms:g} ms ({latency_from})")
    print(f"watch it on the live page: {re.sub(r'/v1$', '', base)}/")
    cold = through_gateway(client, docs, args.batch, metrics_url)
    warm = through_gateway(client, docs, args.batch, metrics_url)
    if warm["vectors"] != cold["vectors"]:
        raise SystemExit("warm vectors differ from cold ones")
    sample = docs[: max(1, min(args.baseline_docs, len(docs)))]
    direct_s = straight_to_upstream(sample, latency_ms)
    direct_rate = len(sample) / direct_s
    projected = len(docs) / direct_rate

    def pct(r):
        return "-" if r is None else f"{100 * r:.1f}%"

    print()
    print(f"{'pass':<34}{'docs':>6}{'seconds':>10}{'docs/s':>10}{'requests':>10}"
          f"{'sub-batches':>13}{'cache hit rate':>16}")
    for name, p in (("gateway, cold (large batches)", cold), ("gateway, warm (large batches)", warm)):
        print(f"{name:<34}{p['docs']:>6}{p['seconds']:>10.2f}{p['docs'] / p['seconds']:>10.1f}"
              f"{p['requests']:>10}{p['sub_batches']:>13}{pct(p['hit_rate']):>16}")
    print(f"{'upstream direct, 1 request/doc':<34}{len(sample):>6}{direct_s:>10.2f}"
          f"{direct_rate:>10.1f}{len(sample):>10}{'-':>13}{'-':>16}")
    if len(sample) < len(docs):
        print(f"  (timed on {len(sample)} of {len(docs)} documents, one at a time; "
              f"all {len(docs)} would take ~{projected:.0f} s)")
    print()
    cold_rate = cold["docs"] / cold["seconds"]
    warm_rate = warm["docs"] / warm["seconds"]
    print(f"speed-up over one request per document: cold {cold_rate / direct_rate:.0f}x, "
          f"warm {warm_rate / direct_rate:.0f}x")
    print(f"1000 documents: {1000 / direct_rate:.1f} s one request per document straight to the "
          f"upstream -> {1000 / cold_rate:.2f} s through the gateway cold, "
          f"{1000 / warm_rate:.2f} s warm")
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
