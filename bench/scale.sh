#!/usr/bin/env bash
# How big a job one coordinator can run, measured three ways (issue: scale by
# simulation):
#   1. the scheduler in virtual time (mr-sim): 10,000 workers, 1,000,000
#      maps, 10,000 reduces, stragglers, killed and stalled workers; the
#      same run without backup attempts;
#   2. the real mrcoordinator under a real RPC load (mr-loadgen): 1,000
#      workers on TLS connections, 100,000 maps and 100 reduces, each task
#      "running" 40 ms (a cluster's load: about 20,000 tasks a second
#      offered); then flat out (no task time: the most it serves); then
#      with 1,000 reduces (each reduce assignment lists all 100,000 map
#      outputs: the wide case); then killed with SIGKILL halfway and
#      started again (nothing acknowledged may be lost; how soon the
#      workers get work again); then the big case, 1,000,000 maps and
#      10,000 reduces (keys rpc_big_*, and big_peak_mib); then the join
#      storm, 10,000 workers joining at once (keys rpc_storm_*). Every run
#      polls /status once a second (rpc_*status_kib, rpc_*status_ms);
#      rpc_p99_ms counts every task-carrying answer, the join storm's
#      included (rpc_steady_p99_ms those sent once all had joined);
#   3. a coordinator restarted on a 1,000,000-task job's journal (mr-replay):
#      reading, replaying and restoring until the first task is handed out.
# Prints a table, or with --json one JSON object.
#
#   bash bench/scale.sh [--json] [--workers N --maps N --reduces N]
#                       [--rpc-workers N --rpc-maps N --rpc-reduces N]
#                       [--big-maps N --big-reduces N] [--storm-workers N]
set -euo pipefail
cd "$(dirname "$0")/.."
json=0 workers=10000 maps=1000000 reduces=10000
rpc_workers=1000 rpc_maps=100000 rpc_reduces=100
big_maps=1000000 big_reduces=10000 storm_workers=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --json) json=1; shift ;;
        --workers) workers=$2; shift 2 ;;
        --maps) maps=$2; shift 2 ;;
        --reduces) reduces=$2; shift 2 ;;
        --rpc-workers) rpc_workers=$2; shift 2 ;;
        --rpc-maps) rpc_maps=$2; shift 2 ;;
        --rpc-reduces) rpc_reduces=$2; shift 2 ;;
        --big-maps) big_maps=$2; shift 2 ;;
        --big-reduces) big_reduces=$2; shift 2 ;;
        --storm-workers) storm_workers=$2; shift 2 ;;
        *) echo "usage: $0 [--json] [--workers N --maps N --reduces N] [--rpc-workers N --rpc-maps N --rpc-reduces N] [--big-maps N --big-reduces N] [--storm-workers N]" >&2; exit 2 ;;
    esac
done
cargo build --release -p mr-bench --bin mr-sim --bin mr-replay --bin mr-loadgen --quiet
cargo build --release -p mr-coordinator --bin mrcoordinator --quiet
bin=$PWD/target/release
sim=$("$bin/mr-sim" --workers "$workers" --maps "$maps" --reduces "$reduces" --json)
replay=$("$bin/mr-replay" --maps "$maps" --reduces "$reduces" --json)
load=(--workers "$rpc_workers" --maps "$rpc_maps" --json)
rpc=$("$bin/mr-loadgen" "${load[@]}" --reduces "$rpc_reduces" --task-ms 40)
# The same flat out, wide, and killed halfway: keys renamed to tell them apart.
flat=$("$bin/mr-loadgen" "${load[@]}" --reduces "$rpc_reduces" | sed -e 's/"rpc_/"rpc_flat_out_/g')
wide=$("$bin/mr-loadgen" "${load[@]}" --reduces $((rpc_reduces * 10)) | sed -e 's/"rpc_/"rpc_wide_/g')
kill=$("$bin/mr-loadgen" "${load[@]}" --reduces "$rpc_reduces" --task-ms 40 --kill-at 0.5 |
    sed -e 's/"rpc_[a-z0-9_]*": [^,}]*, //g' -e 's/, "rpc_ok": \([a-z]*\)}/, "kill_ok": \1}/')
big=$("$bin/mr-loadgen" --workers "$rpc_workers" --maps "$big_maps" --json --reduces "$big_reduces" |
    sed -e 's/"rpc_/"rpc_big_/g')
storm=$("$bin/mr-loadgen" --workers "$storm_workers" --maps "$rpc_maps" --json --reduces "$rpc_reduces" |
    sed -e 's/"rpc_/"rpc_storm_/g')
# The figures the scale targets name, under their own keys.
value() { echo "$1" | sed -n "s/.*\"$2\": \([^,}]*\).*/\1/p"; }
named="{\"big_peak_mib\": $(value "$big" rpc_big_coordinator_peak_mib), \"big_reduce_p99_ms\": $(value "$big" rpc_big_reduce_p99_ms), \"wide_peak_mib\": $(value "$wide" rpc_wide_coordinator_peak_mib), \"wide_reduce_p99_ms\": $(value "$wide" rpc_wide_reduce_p99_ms), \"storm_first_task_p99_ms\": $(value "$storm" rpc_storm_first_task_p99_ms), \"status_kib\": $(value "$big" rpc_big_status_kib), \"status_ms\": $(value "$big" rpc_big_status_ms)}"
all="${sim%\}}, ${replay#\{}"
all="${all%\}}, ${rpc#\{}"
all="${all%\}}, ${flat#\{}"
all="${all%\}}, ${wide#\{}"
all="${all%\}}, ${kill#\{}"
all="${all%\}}, ${big#\{}"
all="${all%\}}, ${storm#\{}"
all="${all%\}}, ${named#\{}"
if [ "$json" = 1 ]; then
    echo "$all"
    exit 0
fi
echo "| figure | value |"
echo "|---|---|"
echo "$all" | tr -d '{}' | tr ',' '\n' | sed -e 's/^ *"\([^"]*\)": *\(.*\)$/| \1 | \2 |/'
