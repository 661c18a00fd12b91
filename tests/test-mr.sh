#!/usr/bin/env bash
# The MIT 6.5840 lab's test-mr.sh, ported to this project's binaries, plus
# scenarios of our own (splits, odd R, plugins, determinism, bad input).
#
# Usage: tests/test-mr.sh [SCENARIO...]   (default: all; see `scenarios` below)
# Env:   MR_BIN   directory holding the release binaries (default target/release;
#                 built with `cargo build --release` unless MR_NO_BUILD=1)
#
# Every scenario runs in its own temp directory with its own coordinator on a
# port the OS picks (--listen 127.0.0.1:0, address read from --addr-file), and
# reaps every process it starts. The last line is "N passed, N failed".

set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MR_BIN:-$ROOT/target/release}
DATA=$ROOT/data
TIMEOUT="timeout -k 2s 180s"
export LC_ALL=C

if [[ ${MR_NO_BUILD:-0} != 1 ]]; then
  (cd "$ROOT" && cargo build --release --quiet) || { echo "build failed"; exit 1; }
fi

TOP=$(mktemp -d "${TMPDIR:-/tmp}/mr-test.XXXXXX")
PASSED=0
FAILED=0
FAILED_NAMES=()

# Kill whatever a scenario left running, then remove the temp tree.
cleanup() {
  local kids
  kids=$(jobs -p)
  [[ -n $kids ]] && kill -9 $kids 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TOP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "--- $1: PASS"; PASSED=$((PASSED + 1)); }
fail() { echo "--- $1: FAIL: $2"; FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); }

# enter NAME: a fresh directory for one scenario.
enter() {
  cd "$TOP" && mkdir -p "$1" && cd "$1" || exit 1
}

# start_coordinator ARGS...: starts mrcoordinator in the background on a free
# port; sets COORD_PID and ADDR.
start_coordinator() {
  rm -f addr
  $TIMEOUT "$BIN/mrcoordinator" --quiet --listen 127.0.0.1:0 --addr-file addr "$@" &
  COORD_PID=$!
  for _ in $(seq 1 100); do
    [[ -s addr ]] && break
    kill -0 $COORD_PID 2>/dev/null || break
    sleep 0.05
  done
  ADDR=$(cat addr 2>/dev/null)
  [[ -n $ADDR ]]
}

worker() { $TIMEOUT "$BIN/mrworker" --coordinator "$ADDR" "$@"; }

# sorted_out: the union of all outputs' lines, sorted, blank lines dropped.
sorted_out() { sort mr-out* | grep .; }

# run_job APP NWORKERS COORD_ARGS...: a whole job with workers in the background.
run_job() {
  local app=$1 n=$2
  shift 2
  start_coordinator "$@" || return 1
  local pids=()
  for _ in $(seq 1 "$n"); do
    worker "$app" &
    pids+=($!)
  done
  wait $COORD_PID
  local rc=$?
  wait "${pids[@]}"
  return $rc
}

# ---------------------------------------------------------------- scenarios

scenario_wc() {
  enter wc
  "$BIN/mrsequential" wc "$DATA"/pg-*.txt || { fail wc "mrsequential failed"; return; }
  sort mr-out-0 > mr-correct-wc.txt && rm -f mr-out-0
  run_job wc 3 "$DATA"/pg-*.txt || { fail wc "coordinator exited non-zero"; return; }
  if [[ $(ls mr-out-* | wc -l) != 10 ]]; then fail wc "expected 10 output files"; return; fi
  sorted_out > mr-wc-all
  cmp -s mr-wc-all mr-correct-wc.txt || { fail wc "output differs from mrsequential"; return; }
  # An independent reference: Python's Unicode categories, when Python exists.
  if command -v python3 >/dev/null; then
    python3 "$ROOT/tests/reference_wc.py" "$DATA"/pg-*.txt | sort > mr-python-wc.txt
    cmp -s mr-wc-all mr-python-wc.txt || { fail wc "output differs from the Python reference"; return; }
  else
    echo "    (python3 not found: skipping the independent Python reference check)"
  fi
  [[ -z $(ls -d mr-job-* 2>/dev/null) ]] || { fail wc "job directory left behind"; return; }
  pass wc
}

scenario_indexer() {
  enter indexer
  "$BIN/mrsequential" indexer "$DATA"/pg-*.txt && sort mr-out-0 > mr-correct-indexer.txt && rm -f mr-out-0
  run_job indexer 2 "$DATA"/pg-*.txt || { fail indexer "coordinator exited non-zero"; return; }
  sorted_out > mr-indexer-all
  cmp -s mr-indexer-all mr-correct-indexer.txt && pass indexer || fail indexer "output differs from mrsequential"
}

scenario_map_parallelism() {
  enter map_parallelism
  run_job mtiming 2 "$DATA"/pg-*.txt || { fail map_parallelism "coordinator exited non-zero"; return; }
  local nt
  nt=$(cat mr-out* | grep -c '^times-')
  [[ $nt == 2 ]] || { fail map_parallelism "saw $nt workers rather than 2"; return; }
  cat mr-out* | grep -q '^parallel.* 2' && pass map_parallelism || fail map_parallelism "map workers did not run in parallel"
}

scenario_reduce_parallelism() {
  enter reduce_parallelism
  run_job rtiming 2 "$DATA"/pg-*.txt || { fail reduce_parallelism "coordinator exited non-zero"; return; }
  local nt
  nt=$(cat mr-out* | grep -c '^[a-z] 2')
  [[ $nt -ge 2 ]] && pass reduce_parallelism || fail reduce_parallelism "too few parallel reduces ($nt)"
}

scenario_job_count() {
  enter job_count
  run_job jobcount 4 "$DATA"/pg-*.txt || { fail job_count "coordinator exited non-zero"; return; }
  local nt
  nt=$(cat mr-out* | awk '{print $2}')
  [[ $nt == 8 ]] && pass job_count || fail job_count "map jobs ran $nt times rather than 8"
}

scenario_early_exit() {
  enter early_exit
  start_coordinator "$DATA"/pg-*.txt || { fail early_exit "coordinator did not start"; return; }
  local pids=($COORD_PID)
  for _ in 1 2 3; do
    worker early_exit &
    pids+=($!)
  done
  # Whatever exits first, the outputs must already be complete.
  wait -n "${pids[@]}"
  sort mr-out* 2>/dev/null | grep . > mr-initial
  wait "${pids[@]}"
  sorted_out > mr-final
  cmp -s mr-initial mr-final || { fail early_exit "output changed after the first process exited"; return; }
  [[ -s mr-final ]] && pass early_exit || fail early_exit "no output"
}

scenario_crash() {
  enter crash
  "$BIN/mrsequential" nocrash "$DATA"/pg-*.txt && sort mr-out-0 > mr-correct-crash.txt && rm -f mr-out-0
  rm -f mr-done
  # The lab's way exactly: a coordinator given no flags serves the lab's
  # socket, and workers given no address are restarted in loops that run
  # only while that socket exists.
  local sock=/var/tmp/5840-mr-$(id -u)
  if [[ -e $sock ]]; then
    fail crash "$sock exists (another coordinator of this user is running?)"
    return
  fi
  ( $TIMEOUT "$BIN/mrcoordinator" --quiet "$DATA"/pg-*.txt; echo $? > coord-rc; touch mr-done ) &
  local sup=$!
  sleep 1
  [[ -e $sock ]] || { fail crash "the coordinator did not create $sock within a second"; wait; return; }
  $TIMEOUT "$BIN/mrworker" crash 2>/dev/null &
  local loops=($!)
  for _ in 1 2; do
    ( while [[ -e $sock && ! -f mr-done ]]; do $TIMEOUT "$BIN/mrworker" crash 2>/dev/null; sleep 1; done ) &
    loops+=($!)
  done
  while [[ -e $sock && ! -f mr-done ]]; do $TIMEOUT "$BIN/mrworker" crash 2>/dev/null; sleep 1; done
  wait $sup
  wait "${loops[@]}"
  [[ $(cat coord-rc) == 0 ]] || { fail crash "coordinator exited $(cat coord-rc)"; return; }
  [[ ! -e $sock ]] || { fail crash "$sock left behind"; return; }
  sorted_out > mr-crash-all
  cmp -s mr-crash-all mr-correct-crash.txt && pass crash || fail crash "output differs from nocrash"
}

scenario_splits() {
  enter splits
  "$BIN/mrsequential" wc "$DATA"/pg-*.txt && sort mr-out-0 > mr-correct.txt && rm -f mr-out-0
  run_job wc 2 --split-size 64KiB --reduces 7 "$DATA/pg-*.txt" || { fail splits "coordinator exited non-zero"; return; }
  [[ $(ls mr-out-* | wc -l) == 7 ]] || { fail splits "expected 7 output files"; return; }
  sorted_out | cmp -s - mr-correct.txt || { fail splits "64KiB splits, 7 reduces: output differs"; return; }
  rm -f mr-out-*
  run_job indexer 2 --split-size 1MiB --reduces 7 "$DATA/pg-*.txt" || { fail splits "indexer job failed"; return; }
  sorted_out > got && "$BIN/mrsequential" indexer "$DATA"/pg-*.txt && sort mr-out-0 > want
  cmp -s got want && pass splits || fail splits "1MiB splits, 7 reduces: indexer output differs"
}

scenario_spill() {
  enter spill
  "$BIN/mrsequential" wc "$DATA"/pg-*.txt && sort mr-out-0 > want-wc && rm -f mr-out-0
  "$BIN/mrsequential" indexer "$DATA"/pg-*.txt && sort mr-out-0 > want-ix && rm -f mr-out-0
  # A budget far below what each map's tables need: every map spills and merges.
  MR_MEMORY=128KiB run_job wc 2 --reduces 3 "$DATA"/pg-*.txt || { fail spill "wc job failed"; return; }
  sorted_out | cmp -s - want-wc || { fail spill "wc output with spills differs"; return; }
  rm -f mr-out-*
  MR_MEMORY=128KiB run_job indexer 2 --reduces 3 "$DATA"/pg-*.txt || { fail spill "indexer job failed"; return; }
  sorted_out | cmp -s - want-ix && pass spill || fail spill "indexer output with spills differs"
}

scenario_plugin() {
  enter plugin
  "$BIN/mrsequential" wc "$DATA"/pg-*.txt && sort mr-out-0 > mr-correct.txt && rm -f mr-out-0
  # As in the lab: a plugin named by a bare file name in the working directory.
  cp "$BIN/libwc.so" wc.so
  run_job wc.so 2 --app wc "$DATA"/pg-*.txt || { fail plugin "plugin job failed"; return; }
  sorted_out | cmp -s - mr-correct.txt || { fail plugin "libwc.so output differs from built-in wc"; return; }
  rm -f mr-out-*
  "$BIN/mrsequential" "$BIN/libindexer.so" "$DATA"/pg-*.txt && sort mr-out-0 > got
  "$BIN/mrsequential" indexer "$DATA"/pg-*.txt && sort mr-out-0 > want
  cmp -s got want || { fail plugin "libindexer.so output differs from built-in indexer"; return; }
  # Embedded workers running a plugin named by its path.
  rm -f mr-out-*
  $TIMEOUT "$BIN/mrcoordinator" --quiet --listen 127.0.0.1:0 --app "$BIN/libindexer.so" --workers 2 "$DATA"/pg-*.txt \
    || { fail plugin "coordinator --app PLUGIN.so --workers 2 failed"; return; }
  sorted_out | cmp -s - want && pass plugin || fail plugin "embedded plugin workers' output differs"
}

scenario_deterministic() {
  enter deterministic
  mkdir a b
  run_job wc 2 --output-dir a --split-size 256KiB "$DATA"/pg-*.txt || { fail deterministic "first run failed"; return; }
  run_job wc 2 --output-dir b --split-size 256KiB "$DATA"/pg-*.txt || { fail deterministic "second run failed"; return; }
  # The outputs, not the reports (mr-report.json holds timings).
  [[ "$(cd a && ls mr-out-*)" == "$(cd b && ls mr-out-*)" ]] || { fail deterministic "different output files"; return; }
  for f in a/mr-out-*; do
    cmp -s "$f" "b/${f#a/}" || { fail deterministic "two runs of the same job differ in ${f#a/}"; return; }
  done
  pass deterministic
}

scenario_embedded() {
  enter embedded
  "$BIN/mrsequential" wc "$DATA"/pg-*.txt && sort mr-out-0 > mr-correct.txt && rm -f mr-out-0
  $TIMEOUT "$BIN/mrcoordinator" --quiet --listen 127.0.0.1:0 --app wc --workers 2 "$DATA"/pg-*.txt \
    || { fail embedded "coordinator --workers 2 failed"; return; }
  sorted_out | cmp -s - mr-correct.txt && pass embedded || fail embedded "output differs"
}

# expect_refusal NAME PATTERN CMD...: CMD must exit non-zero, quickly, and say PATTERN.
expect_refusal() {
  local name=$1 pattern=$2
  shift 2
  local out rc
  out=$(timeout 20s "$@" 2>&1)
  rc=$?
  if [[ $rc == 0 || $rc == 124 ]]; then
    fail bad_input "$name: exit status $rc (want a quick non-zero exit)"
    return 1
  fi
  if ! grep -qF -- "$pattern" <<<"$out"; then
    fail bad_input "$name: message does not mention '$pattern': $out"
    return 1
  fi
}

scenario_bad_input() {
  enter bad_input
  local c=("$BIN/mrcoordinator" --listen 127.0.0.1:0)
  expect_refusal "missing file" "no-such-file.txt" "${c[@]}" no-such-file.txt || return
  expect_refusal "empty glob" "nothing-*.txt" "${c[@]}" 'nothing-*.txt' || return
  expect_refusal "no inputs" "no input files" "${c[@]}" || return
  expect_refusal "directory" "is a directory" "${c[@]}" "$DATA" || return
  expect_refusal "zero reduces" "--reduces" "${c[@]}" --reduces 0 "$DATA/pg-grimm.txt" || return
  expect_refusal "bad size" "12XB" "${c[@]}" --split-size 12XB "$DATA/pg-grimm.txt" || return
  expect_refusal "bad timeout" "-3" "${c[@]}" --task-timeout -3 "$DATA/pg-grimm.txt" || return
  expect_refusal "missing output dir" "nowhere" "${c[@]}" --output-dir nowhere "$DATA/pg-grimm.txt" || return
  expect_refusal "unknown app" "nosuchapp" "$BIN/mrworker" --coordinator 127.0.0.1:9 nosuchapp || return
  echo "not a library" > fake.so
  expect_refusal "fake plugin" "fake.so" "$BIN/mrworker" --coordinator 127.0.0.1:9 ./fake.so || return
  expect_refusal "unreachable coordinator" "127.0.0.1:9" "$BIN/mrworker" --connect-timeout 0.5 --coordinator 127.0.0.1:9 wc || return
  expect_refusal "sequential unknown app" "nosuchapp" "$BIN/mrsequential" nosuchapp "$DATA/pg-grimm.txt" || return
  expect_refusal "sequential missing file" "absent.txt" "$BIN/mrsequential" wc absent.txt || return
  # A worker for another app than --app is refused, naming both.
  start_coordinator --app wc "$DATA/pg-grimm.txt" || { fail bad_input "coordinator did not start"; return; }
  expect_refusal "wrong app" "indexer" "$BIN/mrworker" --coordinator "$ADDR" indexer || { kill $COORD_PID; wait; return; }
  kill $COORD_PID
  wait $COORD_PID 2>/dev/null
  pass bad_input
}

scenarios=(wc indexer map_parallelism reduce_parallelism job_count early_exit crash splits spill plugin deterministic embedded bad_input)
[[ $# -gt 0 ]] && scenarios=("$@")

START=$(date +%s)
for s in "${scenarios[@]}"; do
  echo "*** $s"
  t0=$(date +%s)
  "scenario_$s"
  echo "    ($(($(date +%s) - t0)) s)"
done
echo "*** total $(($(date +%s) - START)) s"
[[ $FAILED -gt 0 ]] && echo "failed: ${FAILED_NAMES[*]}"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED == 0 ]]
