#!/usr/bin/env bash
# Two gateway builds side by side: CPU per 1 KB chat request of each, both
# loaded at the same time on the same core, so that whatever the host does
# during a round (its speed moves by a third between series seconds apart
# on the benchmark machine) it does to both. The ratio repeats to about
# 1 % from round to round, where series run one after the other spread by
# tens of per cent. Not a target: how a change is judged in CPU (kernel
# work included) before the full `cargo bench --bench proxy` run.
#
# Run: bench/ab.sh BINARY_A BINARY_B
#   e.g. bench/ab.sh /tmp/before target/release/switchyard
#   BENCH_CONNS=512 bench/ab.sh ...   (512 connections to each)
# Prints each round's CPU per request of A and B and B/A, then the mean
# of B/A. Passing the same binary twice shows the method's own bias (a
# few tenths of a per cent with 8 s rounds; rounds much shorter weigh the
# CPU clock's 10 ms ticks and the first seconds more); the order in
# which the two loads start alternates from round to round.
#
# Layout: nginx (one worker, core 1) answers a fixed ~1 KB chat
# completion; both gateways (their default logging, to files) on core 0;
# one wrk per gateway on core 1 (BENCH_CONNS connections each, default 64,
# for BENCH_SECS seconds, default 8; BENCH_ROUNDS rounds, default 3, after
# one warm-up round). CPU per request is the process's user + system time
# over the round (/proc) divided by the requests its wrk completed. Needs
# nginx, wrk and curl (installed with apt-get when missing).
set -euo pipefail

[ $# -eq 2 ] || { sed -n 2,17p "$0"; exit 2; }
DIR=$(mktemp -d)
. "$(dirname "$0")/callgrind-kit.sh"
need_tools nginx wrk curl
CONNS=${BENCH_CONNS:-64}
SECS=${BENCH_SECS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
GA= GB=
trap 'kill $GA $GB $(cat "$DIR/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$DIR"' EXIT

UP=$(free_port)
CONTENT=$(printf 'The quick brown fox jumps over the lazy dog. %.0s' $(seq 19))
start_fixed_upstream "$UP" '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"up-model","choices":[{"index":0,"message":{"role":"assistant","content":"'"$CONTENT"'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":220,"total_tokens":470}}'
write_policy chat "$UP"
write_chat_body chat
# One script per wrk: the two run at once.
for side in a b; do
    cat > "$DIR/post-$side.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept-Encoding"] = "gzip, deflate"
local f = io.open("$DIR/body.json", "rb"); wrk.body = f:read("*a"); f:close()
EOF
done

# Starts BINARY on core 0 at PORT; prints its pid once it answers.
start() {
    local bin=$1 port=$2 pid
    taskset -c 0 "$bin" serve --policies "$DIR/policies" --listen "127.0.0.1:$port" \
        --drain-delay 0s >"$DIR/gateway-$port.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
        sleep 0.1
    done
    echo "$pid"
}
PA=$(free_port)
PB=$(free_port)
GA=$(start "$1" "$PA")
GB=$(start "$2" "$PB")
TICK=$(getconf CLK_TCK)

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wrk against PORT with SIDE's script; writes the requests completed to
# $DIR/done-SIDE (failing if any answer was not a 2xx).
load() {
    local port=$1 side=$2 out
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$DIR/post-$side.lua" \
        "http://127.0.0.1:$port/v1/chat/completions")
    if grep -q "Non-2xx" <<<"$out"; then
        echo "gateway $side answered non-2xx:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk '/requests in/ { print $1 }' <<<"$out" > "$DIR/done-$side"
}

# Both at once, the first started alternating by round.
both() {
    local p q
    if [ $(($1 % 2)) -eq 1 ]; then
        load "$PA" a & p=$!
        load "$PB" b & q=$!
    else
        load "$PB" b & p=$!
        load "$PA" a & q=$!
    fi
    wait "$p"
    wait "$q"
}

both 0
RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
    a0=$(cpu "$GA")
    b0=$(cpu "$GB")
    both "$r"
    a1=$(cpu "$GA")
    b1=$(cpu "$GB")
    line=$(python3 -c "
ra, rb = int(open('$DIR/done-a').read()), int(open('$DIR/done-b').read())
a = ($a1 - $a0) / $TICK / ra * 1e6
b = ($b1 - $b0) / $TICK / rb * 1e6
print(f'{b / a:.4f} round $r: A {a:.1f} us per request ({ra} requests), B {b:.1f} us ({rb}), B/A {b / a:.3f}')")
    RATIOS+=("${line%% *}")
    echo "${line#* }"
done
python3 -c "
r = [float(x) for x in '${RATIOS[*]}'.split()]
print(f'B/A mean {sum(r) / len(r):.3f} over {len(r)} rounds ({(sum(r) / len(r) - 1) * 100:+.1f} %), c=$CONNS each')"
