#!/usr/bin/env bash
# Instructions per 1 KB chat request: the gateway's user-space work, counted
# by callgrind, the same from run to run to within 0.1 % (CPU time on this
# machine moves by a third between runs, which hides a 2 % change).
#
# Run: bench/instructions.sh BINARY [OTHER_BINARY]
#   e.g. bench/instructions.sh /tmp/before target/release/switchyard
# Prints each binary's instructions per request (and, with two, the ratio
# of the second to the first). Not a target: how a change to the hot path
# is measured before the full `cargo bench --bench proxy` run.
#
# Layout: nginx (one worker) answers a fixed chat completion on 127.0.0.1;
# the gateway runs under valgrind's callgrind on core 0 with its default
# logging; wrk (the proxy bench's 1 KB body) on core 1, one run. Counting
# starts after a warm-up (BENCH_WARMUP, default 3 s, or CONNS/40 s when
# that is longer) and covers BENCH_SECS (default 4) of load at
# BENCH_CONNS connections (default 16); the figure is the instructions
# counted over the requests the upstream answered in that window. Kernel work (system calls) is
# not counted. With BENCH_SDK_HEADERS=1 each request also carries the
# headers the OpenAI Python SDK sends (authorization, user-agent, accept,
# nine x-stainless-*, accept-encoding: gzip, deflate). Needs valgrind,
# nginx, wrk and curl (installed with apt-get when missing, as the proxy
# bench does).
#
# With BENCH_CACHE_SIM=1, callgrind also simulates this machine's caches
# per core (L1d 32 KiB, L2 1 MiB as the last level: the L3 is shared with
# the load's core and other guests) and the script prints, per request,
# the L1 data misses and the last-level misses (reads + writes), and
# writes the profile to /tmp/cachesim-CONNS-BINARY.out for `callgrind_annotate
# --sort=DLmw`. With BENCH_CONNS=512 (and BENCH_SECS=6, for some 2,500
# requests) it shows what 512 requests in flight cost in cold memory;
# the misses then repeat to about 2 % (the instructions to 0.3 %), so
# compare two binaries within one invocation.
set -euo pipefail

[ $# -ge 1 ] || { sed -n 2,11p "$0"; exit 2; }
. "$(dirname "$0")/callgrind-kit.sh"
need_tools valgrind nginx wrk curl
SECS=${BENCH_SECS:-4}
CONNS=${BENCH_CONNS:-16}
# Warm-up long enough that every connection (the clients' and the
# upstream's) is open before counting starts: under valgrind the gateway
# answers a few hundred requests a second, so 512 connections take seconds
# to cycle through once.
WARMUP=${BENCH_WARMUP:-$(( CONNS / 40 > 3 ? CONNS / 40 : 3 ))}
DIR=$(mktemp -d)
trap 'kill $(cat "$DIR/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$DIR"' EXIT

UP=$(free_port)
start_fixed_upstream "$UP" '{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"A short answer to the question, in one sentence, as asked."},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":14,"total_tokens":134}}'
write_policy chat "$UP"
write_chat_body chat
cat > "$DIR/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$DIR/body.json", "rb"); wrk.body = f:read("*a"); f:close()
EOF
if [ -n "${BENCH_SDK_HEADERS:-}" ]; then
    cat >> "$DIR/post.lua" <<'EOF'
wrk.headers["Accept-Encoding"] = "gzip, deflate"
wrk.headers["authorization"] = "Bearer sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
wrk.headers["accept"] = "application/json"
wrk.headers["user-agent"] = "OpenAI/Python 1.99.0"
wrk.headers["x-stainless-lang"] = "python"
wrk.headers["x-stainless-package-version"] = "1.99.0"
wrk.headers["x-stainless-os"] = "Linux"
wrk.headers["x-stainless-arch"] = "x64"
wrk.headers["x-stainless-runtime"] = "CPython"
wrk.headers["x-stainless-runtime-version"] = "3.11.7"
wrk.headers["x-stainless-async"] = "false"
wrk.headers["x-stainless-retry-count"] = "0"
wrk.headers["x-stainless-read-timeout"] = "600"
EOF
fi

# Requests the upstream has answered (its status page's own included).
upstream_requests() {
    curl -s "http://127.0.0.1:$UP/nginx-status" | awk 'NR == 3 { print $3 }'
}

# Instructions per request of one binary.
count() {
    local bin=$1 port requests collected pid
    port=$(free_port)
    local sim=()
    if [ -n "${BENCH_CACHE_SIM:-}" ]; then
        sim=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=1048576,16,64)
    fi
    start_counted "$bin" "$port" "${sim[@]}"
    pid=$GATEWAY_PID
    local url="http://127.0.0.1:$port/v1/chat/completions"
    # One load run: the warm-up opens every connection, and counting covers
    # the steady state after it (no connection is opened in the window, as
    # in the proxy bench). Requests in the window are the upstream's count
    # (nginx's stub_status), read after each switch of the instrumentation:
    # callgrind takes a fraction of a second to act on either, and reading
    # after both makes the two lags cancel.
    taskset -c 1 wrk -t1 -c"$CONNS" --timeout 60s -d"$((WARMUP + SECS + 2))s" \
        -s "$DIR/post.lua" "$url" >"$DIR/wrk.out" &
    local load=$! first last
    sleep "$WARMUP"
    callgrind_control -i on "$pid" >/dev/null 2>&1
    first=$(upstream_requests)
    sleep "$SECS"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    last=$(upstream_requests)
    wait "$load"
    stop_counted
    collected=$COLLECTED
    requests=$((last - first - 1))
    if [ -z "$requests" ] || [ -z "$collected" ] || [ "$requests" -eq 0 ]; then
        echo "no count for $bin (see $DIR/valgrind.err)" >&2
        exit 1
    fi
    if [ -n "${BENCH_CACHE_SIM:-}" ]; then
        local saved
        saved="/tmp/cachesim-$CONNS-$(basename "$bin").out"
        cp "$DIR/callgrind.out" "$saved"
        callgrind_annotate "$DIR/callgrind.out" | grep 'PROGRAM TOTALS' | python3 -c "
import re, sys
n = [int(x.replace(',', '')) for x in re.findall(r'([\d,]+) \(', sys.stdin.read())]
# Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
print(f'  per request: {(n[4] + n[5]) / $requests:.0f} L1 data misses, '
      f'{(n[7] + n[8]) / $requests:.0f} last-level misses '
      f'({n[7] / $requests:.0f} reads, {n[8] / $requests:.0f} writes); '
      f'profile $saved')" >&2
    fi
    echo $((collected / requests))
}

A=$(count "$1")
echo "$1: $A instructions per request"
if [ $# -ge 2 ]; then
    B=$(count "$2")
    echo "$2: $B instructions per request"
    python3 -c "print(f'ratio {$B / $A:.4f} ({($B / $A - 1) * 100:+.1f} %)')"
fi
