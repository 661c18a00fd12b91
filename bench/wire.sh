#!/usr/bin/env bash
# What the encrypted wire costs: word count over a generated corpus with two
# workers that share nothing with the coordinator (inputs read from it, map
# outputs fetched from each other, outputs uploaded to it), all on
# loopback, with TLS (the default) and with --no-tls. Prints each run's wall
# time, the bytes that crossed the wire, and the medians.
# Usage: bench/wire.sh [--size 1GiB] [--files 12] [--runs 3] [--dir /tmp/mr-wire-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
size=1GiB files=12 runs=3 dir=/tmp/mr-wire-bench
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
cargo build --release --workspace --quiet
bin=$PWD/target/release
mkdir -p "$dir"
corpus=$dir/corpus-$size-$files
[ -d "$corpus" ] || "$bin/mr-corpus" --size "$size" --files "$files" --vocabulary 300000 "$corpus" >/dev/null

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}
counter() { grep -o "\"$2\": *[0-9]*" "$1" | head -1 | grep -o '[0-9]*$'; }

# run MODE EXTRA: one job; prints "seconds shuffled_bytes fetched_input_bytes".
run() {
    local work=$dir/run-$1 port
    rm -rf "$work" && mkdir -p "$work/c/out" "$work/w1" "$work/w2"
    port=$(free_port)
    local t0 t1
    t0=$(date +%s.%N)
    (cd "$work/c" && exec "$bin/mrcoordinator" --quiet --no-socket --listen "127.0.0.1:$port" \
        --app wc --output-dir out $2 "$corpus/*.txt") >"$work/coordinator.log" 2>&1 &
    local coord=$!
    local join=""
    for _ in $(seq 200); do
        [ -s "$work/c/out/mr-job/token" ] && join=$(cat "$work/c/out/mr-job/token") && break
        sleep 0.02
    done
    for w in 1 2; do
        (cd "$work/w$w" && MR_TOKEN=$join exec "$bin/mrworker" --coordinator "127.0.0.1:$port" \
            --local-dir . --remote-inputs --threads 1 wc) >"$work/w$w.log" 2>&1 &
    done
    wait "$coord"
    t1=$(date +%s.%N)
    wait
    local rep=$work/c/out/mr-report.json
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
        "$(counter "$rep" "shuffle bytes fetched")" "$(counter "$rep" "input bytes fetched")"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "corpus $corpus; $runs runs each, alternating"
: >"$dir/tls.times"
: >"$dir/plain.times"
for i in $(seq "$runs"); do
    for mode in tls plain; do
        extra=""
        [ "$mode" = plain ] && extra="--no-tls"
        read -r secs shuffled inputs < <(run "$mode" "$extra")
        echo "$secs" >>"$dir/$mode.times"
        printf '%-6s run %d: %6ss  shuffled %5d MiB  inputs over the wire %5d MiB\n' \
            "$mode" "$i" "$secs" "$((${shuffled:-0} / 1048576))" "$((${inputs:-0} / 1048576))"
    done
done
tls=$(median <"$dir/tls.times")
plain=$(median <"$dir/plain.times")
echo "median: TLS ${tls}s, --no-tls ${plain}s, TLS costs $(awk -v a="$tls" -v b="$plain" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')"
