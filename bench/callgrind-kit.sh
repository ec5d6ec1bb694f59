# Sourced by bench/instructions.sh and bench/stream-instructions.sh (what
# both need to count a gateway's instructions under callgrind) and by
# bench/ab.sh. Not run on its own. Expects DIR (a scratch folder) to be set.

# Installs the named tools with apt-get when any is missing.
need_tools() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
            apt-get install -y -q "$@" >/dev/null
            return
        fi
    done
}

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Policies in $DIR/policies: route NAME to one openai provider at port UP.
write_policy() {
    local name=$1 up=$2
    mkdir -p "$DIR/policies"
    cat > "$DIR/policies/bench.yaml" <<POLICY
providers:
  $name: { kind: openai, base_url: "http://127.0.0.1:$up/v1" }
routes:
  $name: { targets: [{provider: $name}] }
POLICY
}

# The proxy bench's 1 KB chat request for route NAME in $DIR/body.json;
# EXTRA is added to its members (e.g. ',"stream":true').
write_chat_body() {
    local name=$1 extra=${2:-} content
    content=$(printf 'Summarise the following paragraph in one sentence please. %.0s' $(seq 15))
    printf '{"model":"%s","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"%s"}],"max_tokens":256,"temperature":0.2%s}' \
        "$name" "$content" "$extra" > "$DIR/body.json"
}

# Starts BINARY under callgrind on core 0, counting off, listening on
# PORT with $DIR/policies; further arguments go to valgrind. Sets
# GATEWAY_PID and returns once the gateway answers.
start_counted() {
    local bin=$1 port=$2
    shift 2
    taskset -c 0 valgrind --tool=callgrind --instr-atstart=no "$@" \
        --callgrind-out-file="$DIR/callgrind.out" \
        "$bin" serve --policies "$DIR/policies" --listen "127.0.0.1:$port" --drain-delay 0s \
        >"$DIR/gateway.log" 2>"$DIR/valgrind.err" &
    GATEWAY_PID=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
        sleep 0.2
    done
}

# Stops the gateway started last (in this shell: only it can wait for
# it) and sets COLLECTED to the instructions callgrind counted (empty when
# it counted none).
stop_counted() {
    kill -INT "$GATEWAY_PID"
    wait "$GATEWAY_PID" 2>/dev/null || true
    COLLECTED=$(grep -oE 'Collected : [0-9]+' "$DIR/valgrind.err" | grep -oE '[0-9]+$' || true)
}

# nginx (one worker, on core 1) at 127.0.0.1:UP answering every chat
# completion with the fixed JSON ANSWER, and its request count at
# /nginx-status; its pid in $DIR/nginx.pid.
start_fixed_upstream() {
    local up=$1 answer=$2 nginx
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    mkdir -p "$DIR/tmp"
    cat > "$DIR/nginx.conf" <<EOF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $DIR/tmp; proxy_temp_path $DIR/tmp; fastcgi_temp_path $DIR/tmp;
  uwsgi_temp_path $DIR/tmp; scgi_temp_path $DIR/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$up;
    location = /nginx-status { stub_status; }
    location /v1/chat/completions {
      default_type application/json;
      return 200 '$answer';
    }
  }
}
EOF
    taskset -c 1 "$nginx" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log"
}
