#!/usr/bin/env bash
# Runs the commands README.md and docs/GUIDE.md show for one machine, as
# written, in a scratch directory with the repository's data/ and target/,
# and checks what they claim; the several-machine set-ups are played on this
# one. (tests/hosts.sh runs real multi-host jobs; the chaos command runs in
# tests/run.sh.)
#
#   MR_NO_BUILD=1 bash tests/docs.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[[ -z "${MR_NO_BUILD:-}" ]] && { cargo build --release --workspace --quiet || exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/mr-docs.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
ln -s "$ROOT/data" "$W/data"
ln -s "$ROOT/target" "$W/target"
cd "$W"
FAILED=0
check() { if eval "$2"; then echo "--- docs: $1: ok"; else echo "--- docs: $1: FAILED"; FAILED=$((FAILED + 1)); fi; }
fresh() { rm -rf mr-out-* mr-report.json mr-timeline.svg; }
mkdir -p ref && target/release/mrsequential --output-dir ref wc data/pg-*.txt && sort ref/mr-out-0 > want

# README quick start (and GUIDE "One machine").
fresh
target/release/mrcoordinator --app wc --workers 2 'data/pg-*.txt' 2>summary
check "quick start" '[[ $(sort mr-out-* | cmp - want && echo same) == same ]] && grep -q "job complete" summary && [[ -s mr-report.json && -s mr-timeline.svg ]]'
sort -k2 -n -r mr-out-* | head > top
check "most frequent words" 'grep -q "^the " top'

# GUIDE: workers started by hand.
fresh
target/release/mrcoordinator --app wc 'data/pg-*.txt' 2>/dev/null &
target/release/mrworker wc &
target/release/mrworker wc &
wait
check "workers by hand" 'sort mr-out-* | cmp -s - want'

# GUIDE: watching a job (a slow app, so that there is something to watch).
fresh
target/release/mrcoordinator --quiet --app jobcount --workers 2 --status-addr 127.0.0.1:8080 'data/pg-*.txt' &
sleep 3
target/release/mrstatus 127.0.0.1:8080 > status.txt
wait
check "mrstatus" 'grep -q "(jobcount): map" status.txt'

# GUIDE: streaming jobs (on text reduced to ASCII letters, where tr and the
# built-in word splitter agree).
fresh
mkdir -p ascii && for f in data/pg-*.txt; do LC_ALL=C tr -c 'A-Za-z\n' ' ' < "$f" > "ascii/${f#data/}"; done
mkdir -p ascii-ref && target/release/mrsequential --output-dir ascii-ref wc ascii/pg-*.txt && sort ascii-ref/mr-out-0 > ascii-want
mrcoordinator() { target/release/mrcoordinator "$@"; }
mrcoordinator --workers 2 \
  --map-cmd "tr -cs 'A-Za-z' '\n' | awk 'NF { print \$1 \"\t1\" }'" \
  --reduce-cmd "awk -F'\t' '\$1 != k { if (NR > 1) print k \"\t\" n; k = \$1; n = 0 } { n += \$2 } END { if (NR > 0) print k \"\t\" n }'" \
  'ascii/pg-*.txt' 2>/dev/null
check "streaming" 'sort mr-out-* | cmp -s - ascii-want'

# README / GUIDE: an app built as a plugin, run by embedded workers.
fresh
target/release/mrcoordinator --quiet --app target/release/libavglen.so --workers 2 'data/pg-*.txt'
check "plugin app" '[[ $(cat mr-out-* | wc -l) == 8 ]] && grep -q "app: documents" mr-report.json'

# GUIDE: several machines sharing a directory, played on this one: /shared
# is a directory here and "coordhost" is this host. The coordinator binds
# all interfaces (nothing is sent beyond loopback).
fresh
mkdir -p shared/in shared/out shared/tmp && cp data/pg-*.txt shared/in/
S=$PWD/shared
target/release/mrcoordinator --listen 0.0.0.0:7878 --app indexer --output-dir "$S/out" \
  --work-dir "$S/tmp" "$S/in/*.txt" 2>coord.log &
for _ in $(seq 50); do [[ -s $S/tmp/mr-job/token ]] && break; sleep 0.1; done
# Another user's shell: no local token file to find, so the token is given.
XDG_RUNTIME_DIR=$PWD/elsewhere MR_TOKEN=$(cat "$S/tmp/mr-job/token") target/release/mrworker --coordinator 127.0.0.1:7878 indexer
wait
mkdir -p iref && target/release/mrsequential --output-dir iref indexer "$S"/in/*.txt
check "shared directory" 'sort "$S"/out/mr-out-* | cmp -s - <(sort iref/mr-out-0) && grep -q "MR_TOKEN=" coord.log'

# GUIDE: several machines sharing nothing, played on this one ("coordhost"
# is this host; /data/in is in/ here). The worker gets --local-dir, so it
# keeps and serves its map outputs and uploads its outputs as it would
# elsewhere.
fresh
mkdir -p nothing/in nothing/out nothing/local && cp data/pg-*.txt nothing/in/
( cd nothing && ../target/release/mrcoordinator --listen 0.0.0.0:7879 --app wc --output-dir out 'in/*.txt' 2>coord.log ) &
for _ in $(seq 50); do [[ -s nothing/out/mr-job/token ]] && break; sleep 0.1; done
XDG_RUNTIME_DIR=$PWD/elsewhere MR_TOKEN=$(cat nothing/out/mr-job/token) target/release/mrworker --coordinator 127.0.0.1:7879 --local-dir nothing/local wc
wait
check "sharing nothing" 'sort nothing/out/mr-out-* | cmp -s - want && grep -q "\"output bytes uploaded\": [1-9]" nothing/out/mr-report.json && [[ -z $(ls nothing/local) ]]'

# README: the quick benchmark.
( cd "$ROOT" && bash bench/run.sh --size 100MiB --files 8 --runs 1 --tiny-files 0 --dir "$W/bench" ) > bench.txt 2>&1
check "quick benchmark" 'grep -q "yardstick" bench.txt && grep -q "mrsequential wc" bench.txt'

echo "$FAILED failed"
[[ $FAILED == 0 ]]
