#!/usr/bin/env bash
# How big a job one coordinator can run, measured three ways (issue: scale by
# simulation):
#   1. the scheduler in virtual time (mr-sim): 10,000 workers, 1,000,000
#      maps, 10,000 reduces, stragglers, killed and stalled workers; the
#      same run without backup attempts;
#   2. the real coordinator under a real RPC load (not built yet: null);
#   3. a coordinator restarted on a 1,000,000-task job's journal (mr-replay):
#      reading, replaying and restoring until the first task is handed out.
# Prints a table, or with --json one JSON object.
#
#   bash bench/scale.sh [--json] [--workers N --maps N --reduces N]
set -euo pipefail
cd "$(dirname "$0")/.."
json=0 workers=10000 maps=1000000 reduces=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --json) json=1; shift ;;
        --workers) workers=$2; shift 2 ;;
        --maps) maps=$2; shift 2 ;;
        --reduces) reduces=$2; shift 2 ;;
        *) echo "usage: $0 [--json] [--workers N --maps N --reduces N]" >&2; exit 2 ;;
    esac
done
cargo build --release -p mr-bench --bin mr-sim --bin mr-replay --quiet
bin=$PWD/target/release
sim=$("$bin/mr-sim" --workers "$workers" --maps "$maps" --reduces "$reduces" --json)
replay=$("$bin/mr-replay" --maps "$maps" --reduces "$reduces" --json)
# Parts not measured yet report null rather than a made-up figure.
rest='"rpc_workers": null, "rpc_tasks_per_s": null, "rpc_p99_ms": null'
all="${sim%\}}, ${replay#\{}"
all="${all%\}}, $rest}"
if [ "$json" = 1 ]; then
    echo "$all"
    exit 0
fi
echo "| figure | value |"
echo "|---|---|"
echo "$all" | tr -d '{}' | tr ',' '\n' | sed -e 's/^ *"\([^"]*\)": *\(.*\)$/| \1 | \2 |/'
