#!/usr/bin/env bash
# Throughput of the example server with the metrics layer against the same
# server without it, measured with wrk over loopback, and their ratio.
#
#   bash scripts/wrk_compare.sh
#
# Settings (environment): DURATION (per run, default 10s), CONNECTIONS
# (default 32), ROUNDS (runs per variant, alternated, default 3).
# Request logging is off in both variants: the comparison is about the layer.
# With at least two CPUs, the server is pinned to the first and wrk to the
# second, so that they do not steal each other's time.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
ROUNDS="${ROUNDS:-3}"

if ! command -v wrk >/dev/null 2>&1; then
    echo "== installing wrk (Debian package)" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null ||
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null; }
fi

cargo build --release --example ctms_server >&2
server_bin=target/release/examples/ctms_server

server_cpu=()
wrk_cpu=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    wrk_cpu=(taskset -c 1)
fi

workdir="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# Starts the server with CTMS_RECORD_METRICS=$1 and sets $server_addr.
start_server() {
    local out="$workdir/server.out"
    : >"$out"
    CTMS_ADDR=127.0.0.1:0 CTMS_USE_MOZLOG=false CTMS_LOG_REQUESTS=false \
        CTMS_RECORD_METRICS="$1" "${server_cpu[@]}" "$server_bin" >"$out" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        server_addr="$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$out" | head -n 1)"
        if [ -n "$server_addr" ]; then return 0; fi
        if ! kill -0 "$server_pid" 2>/dev/null; then cat "$out" >&2; return 1; fi
        sleep 0.1
    done
    echo "the server did not announce its address" >&2
    return 1
}

stop_server() {
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# Requests/second of one wrk run against path $1 with optional header $2.
measure() {
    local args=(-t1 -c"$CONNECTIONS" -d"$DURATION" --latency)
    if [ -n "${2:-}" ]; then args+=(-H "$2"); fi
    "${wrk_cpu[@]}" wrk "${args[@]}" "http://$server_addr$1" |
        awk '/^Requests\/sec:/ { print $2 }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

auth="Authorization: Basic $(printf 'test_client:test_secret' | base64)"
workloads=(
    "heartbeat|/__lbheartbeat__|"
    "api_client|/ctms/00000000-0000-4000-8000-000000000000|$auth"
)

printf '# wrk -t1 -c%s -d%s, %s alternated rounds per variant, %s\n' \
    "$CONNECTIONS" "$DURATION" "$ROUNDS" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
printf '| workload | without layer (req/s) | with layer (req/s) | ratio |\n|---|---:|---:|---:|\n'
for workload in "${workloads[@]}"; do
    IFS='|' read -r name path header <<<"$workload"
    : >"$workdir/off" && : >"$workdir/on"
    for _ in $(seq 1 "$ROUNDS"); do
        for variant in false true; do
            start_server "$variant"
            # One short warm-up run, not counted.
            DURATION=2s measure "$path" "$header" >/dev/null
            if [ "$variant" = true ]; then file=on; else file=off; fi
            rate="$(measure "$path" "$header")"
            echo "$rate" >>"$workdir/$file"
            echo "$name metrics=$variant: $rate req/s" >&2
            stop_server
        done
    done
    off="$(median <"$workdir/off")"
    on="$(median <"$workdir/on")"
    ratio="$(awk -v on="$on" -v off="$off" 'BEGIN { printf "%.3f", on / off }')"
    printf '| %s | %s | %s | %s |\n' "$name" "$off" "$on" "$ratio"
done
