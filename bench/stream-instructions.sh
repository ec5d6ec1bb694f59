#!/usr/bin/env bash
# Instructions per streamed chunk: the gateway's user-space work for one
# SSE chunk passed through, counted by callgrind. Runs spread by about
# +-3 % (how often two chunks arrive together varies under valgrind), so
# compare means of a few runs; CPU time per stream moves by a fifth.
#
# Run: bench/stream-instructions.sh BINARY [OTHER_BINARY]
#   e.g. bench/stream-instructions.sh /tmp/before target/release/switchyard
# Prints each binary's instructions per chunk (and, with two, the ratio of
# the second to the first). Not a target: how a change to the stream path
# is measured before the full `cargo bench --bench proxy` run.
#
# Layout: a Python upstream (asyncio, core 1) answers every chat request
# with the proxy bench's stream: 500 chunks (BENCH_GAP seconds apart,
# default 0.005 as in the bench's slow row; 0 for back to back), then the
# finishing chunk, the usage chunk and `[DONE]`. The gateway runs under
# valgrind's callgrind on core 0 with its default logging; curl (core 1)
# sends 4 streams to warm up, then counting covers BENCH_STREAMS (default
# 16) streams at once. The figure is the instructions counted over those
# streams divided by their chunks. Kernel work is not counted. Needs
# valgrind, python3 and curl (valgrind and curl installed with apt-get
# when missing).
set -euo pipefail

[ $# -ge 1 ] || { sed -n 2,10p "$0"; exit 2; }
. "$(dirname "$0")/callgrind-kit.sh"
need_tools valgrind curl
GAP=${BENCH_GAP:-0.005}
STREAMS=${BENCH_STREAMS:-16}
CHUNKS=500
DIR=$(mktemp -d)
UPSTREAM_PID=
trap 'kill $UPSTREAM_PID 2>/dev/null || true; rm -rf "$DIR"' EXIT

UP=$(free_port)
cat > "$DIR/upstream.py" <<'EOF'
import asyncio, sys
port, gap, chunks = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def event(i):
    return ('data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1700000000,'
            '"model":"up-model","choices":[{"index":0,"delta":{"content":"tok%d "},'
            '"finish_reason":null}]}\n\n' % i).encode()
TAIL = (b'data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"up-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"chatcmpl-s","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"up-model","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":500,'
        b'"total_tokens":510}}\n\ndata: [DONE]\n\n')
def chunk(b):
    return b'%x\r\n' % len(b) + b + b'\r\n'
async def serve(r, w):
    try:
        while True:
            head = await r.readuntil(b'\r\n\r\n')
            length = 0
            for line in head.split(b'\r\n'):
                if line.lower().startswith(b'content-length:'):
                    length = int(line.split(b':')[1])
            await r.readexactly(length)
            w.write(b'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n'
                    b'transfer-encoding: chunked\r\n\r\n')
            for i in range(chunks):
                w.write(chunk(event(i)))
                await w.drain()
                if gap:
                    await asyncio.sleep(gap)
            w.write(chunk(TAIL) + b'0\r\n\r\n')
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
async def main():
    server = await asyncio.start_server(serve, '127.0.0.1', port)
    await server.serve_forever()
asyncio.run(main())
EOF
taskset -c 1 python3 "$DIR/upstream.py" "$UP" "$GAP" "$CHUNKS" &
UPSTREAM_PID=$!
write_policy stream "$UP"
write_chat_body stream ',"stream":true'

# `n` streams at once through the gateway on `port`; each must end with
# `[DONE]` after every chunk.
streams() {
    local n=$1 port=$2 i pids=()
    for i in $(seq 1 "$n"); do
        taskset -c 1 curl -s -N -o "$DIR/out.$i" -H 'content-type: application/json' \
            --data-binary @"$DIR/body.json" "http://127.0.0.1:$port/v1/chat/completions" &
        pids+=($!)
    done
    wait "${pids[@]}"
    for i in $(seq 1 "$n"); do
        local events
        events=$(grep -c '^data: ' "$DIR/out.$i" || true)
        if [ "$events" -le "$CHUNKS" ] || [ "$(tail -c 14 "$DIR/out.$i")" != "data: [DONE]" ]; then
            echo "a stream ended early ($events events)" >&2
            exit 1
        fi
    done
}

# Instructions per chunk of one binary.
count() {
    local bin=$1 port collected
    port=$(free_port)
    start_counted "$bin" "$port"
    streams 4 "$port"
    callgrind_control -i on "$GATEWAY_PID" >/dev/null 2>&1
    streams "$STREAMS" "$port"
    callgrind_control -i off "$GATEWAY_PID" >/dev/null 2>&1
    stop_counted
    collected=$COLLECTED
    if [ -z "$collected" ]; then
        echo "no count for $bin (see $DIR/valgrind.err)" >&2
        exit 1
    fi
    echo $((collected / STREAMS / CHUNKS))
}

A=$(count "$1")
echo "$1: $A instructions per chunk ($STREAMS streams of $CHUNKS chunks, ${GAP}s apart)"
if [ $# -ge 2 ]; then
    B=$(count "$2")
    echo "$2: $B instructions per chunk"
    python3 -c "print(f'ratio {$B / $A:.4f} ({($B / $A - 1) * 100:+.1f} %)')"
fi
