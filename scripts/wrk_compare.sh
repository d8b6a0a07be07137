#!/usr/bin/env bash
# Throughput of the example server with the metrics layer against the same
# server without it, measured with wrk over loopback, and their ratio.
#
#   bash scripts/wrk_compare.sh
#
# Settings (environment): DURATION (per run, default 3s), CONNECTIONS
# (default 32), ROUNDS (runs per variant, alternated, default 15).
# Request logging is off in both variants: the comparison is about the layer.
# With at least two CPUs, both servers are pinned to the first and wrk to
# the second, so that they do not steal each other's time.
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

# Both servers run side by side, idle but for the run measuring them; runs
# alternate between them (in turn first), so that drifts in the machine's
# speed hit both alike. The ratio is the median of the per-round ratios.
without="$(start_server false)"
with="$(start_server true)"

auth="Authorization: Basic $(printf 'test_client:test_secret' | base64)"
workloads=(
    "heartbeat|/__lbheartbeat__|"
    "api_client|/ctms/00000000-0000-4000-8000-000000000000|$auth"
)

printf '# wrk -t1 -c%s -d%s, %s rounds, %s\n' \
    "$CONNECTIONS" "$DURATION" "$ROUNDS" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
printf '| workload | without layer (req/s) | with layer (req/s) | ratio (median of rounds) |\n|---|---:|---:|---:|\n'
for workload in "${workloads[@]}"; do
    IFS='|' read -r name path header <<<"$workload"
    : >"$workdir/off"; : >"$workdir/on"; : >"$workdir/ratio"
    # Warm both up, not counted.
    DURATION=2s measure "$without" "$path" "$header" >/dev/null
    DURATION=2s measure "$with" "$path" "$header" >/dev/null
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) -eq 1 ]; then
            off="$(measure "$without" "$path" "$header")"
            on="$(measure "$with" "$path" "$header")"
        else
            on="$(measure "$with" "$path" "$header")"
            off="$(measure "$without" "$path" "$header")"
        fi
        echo "$off" >>"$workdir/off"
        echo "$on" >>"$workdir/on"
        awk -v on="$on" -v off="$off" 'BEGIN { printf "%.4f\n", on / off }' >>"$workdir/ratio"
        echo "$name round $round: without $off, with $on req/s" >&2
    done
    printf '| %s | %s | %s | %.3f |\n' "$name" "$(median <"$workdir/off")" \
        "$(median <"$workdir/on")" "$(median <"$workdir/ratio")"
done
