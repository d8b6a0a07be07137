#!/usr/bin/env bash
# Throughput of the example server with the metrics layer against the same
# server without it, measured with wrk over loopback, and their ratio.
#
#   bash scripts/wrk_compare.sh
#
# Settings (environment): DURATION (per round, default 3s), CONNECTIONS
# (per server, default 32), ROUNDS (default 15).
# Request logging is off in both variants: the comparison is about the layer.
# With at least two CPUs, both servers are pinned to the first and both wrk
# to the second, so that load generation does not take the servers' time.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-3s}"
CONNECTIONS="${CONNECTIONS:-32}"
ROUNDS="${ROUNDS:-15}"

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
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$workdir"
}
trap cleanup EXIT

# Starts the server with CTMS_RECORD_METRICS=$1 and prints its address.
start_server() {
    local out="$workdir/server-$1.out"
    CTMS_ADDR=127.0.0.1:0 CTMS_USE_MOZLOG=false CTMS_LOG_REQUESTS=false \
        CTMS_RECORD_METRICS="$1" "${server_cpu[@]}" "$server_bin" >"$out" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        local addr
        addr="$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$out" | head -n 1)"
        if [ -n "$addr" ]; then echo "$addr"; return 0; fi
        sleep 0.1
    done
    echo "the server did not announce its address:" >&2
    cat "$out" >&2
    return 1
}

# Requests/second of one wrk run against $1 (address), path $2, header $3.
measure() {
    local args=(-t1 -c"$CONNECTIONS" -d"$DURATION")
    if [ -n "${3:-}" ]; then args+=(-H "$3"); fi
    "${wrk_cpu[@]}" wrk "${args[@]}" "http://$1$2" | awk '/^Requests\/sec:/ { print $2 }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Both servers run at once on the same CPU, each loaded by its own wrk at the
# same time: the scheduler gives them equal CPU time, so the ratio of their
# throughputs is the ratio of their costs per request, and whatever slows
# the machine down during a round slows both alike.
without="$(start_server false)"
with="$(start_server true)"

auth="Authorization: Basic $(printf 'test_client:test_secret' | base64)"
workloads=(
    "heartbeat|/__lbheartbeat__|"
    "api_client|/ctms/00000000-0000-4000-8000-000000000000|$auth"
)

printf '# two wrk -t1 -c%s -d%s at once, one per server, %s rounds, %s\n' \
    "$CONNECTIONS" "$DURATION" "$ROUNDS" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
printf '| workload | without layer (req/s) | with layer (req/s) | ratio (median of rounds) | lowest, highest round |\n|---|---:|---:|---:|---:|\n'
for workload in "${workloads[@]}"; do
    IFS='|' read -r name path header <<<"$workload"
    : >"$workdir/off"; : >"$workdir/on"; : >"$workdir/ratio"
    # Warm both up, not counted.
    DURATION=2s measure "$without" "$path" "$header" >/dev/null
    DURATION=2s measure "$with" "$path" "$header" >/dev/null
    for round in $(seq 1 "$ROUNDS"); do
        measure "$without" "$path" "$header" >"$workdir/round-off" &
        off_pid=$!
        measure "$with" "$path" "$header" >"$workdir/round-on" &
        on_pid=$!
        wait "$off_pid" "$on_pid"
        off="$(cat "$workdir/round-off")"
        on="$(cat "$workdir/round-on")"
        echo "$off" >>"$workdir/off"
        echo "$on" >>"$workdir/on"
        awk -v on="$on" -v off="$off" 'BEGIN { printf "%.4f\n", on / off }' >>"$workdir/ratio"
        echo "$name round $round: without $off, with $on req/s" >&2
    done
    printf '| %s | %s | %s | %.3f | %s, %s |\n' "$name" "$(median <"$workdir/off")" \
        "$(median <"$workdir/on")" "$(median <"$workdir/ratio")" \
        "$(sort -g "$workdir/ratio" | head -n 1)" "$(sort -g "$workdir/ratio" | tail -n 1)"
done
