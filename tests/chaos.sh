#!/usr/bin/env bash
# Chaos test: a word count over a generated multi-file corpus with 3 workers,
# while a killer loop kill -9s a random worker every 1-3 s and starts a fresh
# one; once in each run the coordinator is kill -9ed mid-map-phase and started
# again with the same command (it resumes from its journal, the workers find
# it on their own); once a byte of an accepted intermediate file is flipped
# (the reducer's CRC32C check must catch it and the map must run again).
# The output must equal mrsequential's, byte for byte, every run.
#
#   bash tests/chaos.sh [--size 100MiB] [--runs 10] [--app wc] [--kill-ms 1000-3000] [--network] [--keep]
#
# --network: workers keep map outputs in their own directories and serve
# them (--local-dir) and fetch every input from the coordinator
# (--remote-inputs), as on hosts sharing no files: a killed worker takes its
# map outputs with it, and the flipped byte is in a worker's served file.
#
# Prints one line per run and a summary; exits non-zero if any run failed.
# MR_NO_BUILD=1 skips the release build; MR_BIN=DIR takes the binaries from DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${MR_BIN:-$ROOT/target/release}

SIZE=100MiB
RUNS=10
APP=wc
KEEP=0
KILL_LO=1000
KILL_HI=3000
NETWORK=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --size) SIZE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --app) APP=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --network) NETWORK=1; shift ;;
    --kill-ms) KILL_LO=${2%-*}; KILL_HI=${2#*-}; shift 2 ;;
    *) echo "usage: $0 [--size 100MiB] [--runs N]  [--app wc|indexer] [--kill-ms LO-HI] [--network] [--keep]" >&2; exit 2 ;;
  esac
done

if [[ -z "${MR_NO_BUILD:-}" ]]; then
  cargo build --release --workspace --quiet || exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mr-chaos.XXXXXX")
WORKERS=()
COORD=
cleanup() {
  [[ -n "$COORD" ]] && kill -9 "$COORD" 2>/dev/null
  for p in "${WORKERS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  [[ $KEEP == 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# A random number of milliseconds in [lo, hi].
rand_ms() { echo $(( $1 + RANDOM % ($2 - $1 + 1) )); }

# A free loopback port: the coordinator must come back on the same address.
# Picked below the system's ephemeral range: outgoing connections take ports
# from it without listening, which a connect cannot see but a bind fails on.
free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  (( low > 21000 )) || low=32768
  while :; do
    p=$(( 20000 + RANDOM % (low - 20000) ))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

echo "*** corpus: $SIZE in 16 files$([[ $NETWORK == 1 ]] && echo ", workers sharing no files")"
"$BIN/mr-corpus" --size "$SIZE" --files 16 --vocabulary 200000 "$WORK/corpus" >/dev/null || exit 1
INPUTS=("$WORK"/corpus/*.txt)
mkdir -p "$WORK/seq"
"$BIN/mrsequential" --output-dir "$WORK/seq" "$APP" "${INPUTS[@]}" || exit 1
LC_ALL=C sort "$WORK/seq/mr-out-0" > "$WORK/want"

# Map outputs (mr-<m>-<attempt>): in the job directory, or (--network) in
# the workers' own directories.
map_outputs() {
  local d
  if [[ $NETWORK == 1 ]]; then
    for d in "$RUN"/local/mr-worker-*; do
      ls "$d" 2>/dev/null | grep -E '^mr-[0-9]+-[0-9]+$' | sed "s|^|$d/|"
    done
  else
    ls "$RUN/out/mr-job" 2>/dev/null | grep -E '^mr-[0-9]+-[0-9]+$' | sed "s|^|$RUN/out/mr-job/|"
  fi
}

start_worker() {
  # Small splits and one thread each keep the job long enough for chaos.
  local place=()
  [[ $NETWORK == 1 ]] && place=(--local-dir "$RUN/local" --remote-inputs)
  MR_THREADS=1 "$BIN/mrworker" --coordinator "$ADDR" "${place[@]}" "$APP" 2>>"$RUN/workers.log" &
  WORKERS+=($!)
}

start_coordinator() {
  "$BIN/mrcoordinator" --listen "$ADDR" --app "$APP" --reduces 7 --split-size 2MiB \
    --task-timeout 3 --output-dir "$RUN/out" "${INPUTS[@]}" 2>>"$RUN/coordinator.log" &
  COORD=$!
}

one_run() {
  local i=$1
  RUN=$WORK/run-$i
  mkdir -p "$RUN/out" "$RUN/local"
  ADDR=127.0.0.1:$(free_port)
  WORKERS=()
  local t0 kills=0 restarted=- corrupted=- next_kill
  t0=$(now)
  start_coordinator
  for _ in 1 2 3; do start_worker; done
  next_kill=$(( $(date +%s%3N) + $(rand_ms $KILL_LO $KILL_HI) ))
  local nmaps total_maps=$(( ($(cat "${INPUTS[@]}" | wc -c) + 2097151) / 2097152 ))
  while :; do
    # The (current) coordinator has exited: done, one way or the other.
    if ! kill -0 "$COORD" 2>/dev/null; then
      wait "$COORD"; local rc=$?
      break
    fi
    nmaps=$(map_outputs | wc -l)
    # Once: flip a byte in the middle of an accepted map output.
    if [[ $corrupted == - && $nmaps -ge 2 ]]; then
      local victim
      victim=$(map_outputs | head -1)
      if [[ -n $victim && -f $victim ]]; then
        local size off byte
        size=$(stat -c %s "$victim")
        off=$(( size / 2 ))
        byte=$(od -An -tu1 -j "$off" -N1 "$victim" | tr -d ' ')
        printf "$(printf '\\%03o' $(( byte ^ 0x20 )))" | dd of="$victim" bs=1 seek="$off" conv=notrunc status=none
        corrupted=$(since "$t0")
      fi
    fi
    # Once: kill -9 the coordinator when about half the maps are done, and
    # start it again with the same command.
    if [[ $restarted == - && $nmaps -ge $(( total_maps / 2 )) ]]; then
      kill -9 "$COORD"; wait "$COORD" 2>/dev/null
      sleep 0.3
      start_coordinator
      restarted=$(since "$t0")
    fi
    # Every 1-3 s: kill -9 a random worker and start a fresh one.
    if [[ $(date +%s%3N) -ge $next_kill ]]; then
      local k=$(( RANDOM % ${#WORKERS[@]} ))
      kill -9 "${WORKERS[$k]}" 2>/dev/null
      wait "${WORKERS[$k]}" 2>/dev/null
      unset 'WORKERS[k]'; WORKERS=("${WORKERS[@]}")
      start_worker
      kills=$((kills + 1))
      next_kill=$(( $(date +%s%3N) + $(rand_ms $KILL_LO $KILL_HI) ))
    fi
    if (( $(date +%s) - ${t0%.*} > 600 )); then
      echo "run $i: FAIL: no end after 600 s"; return 1
    fi
    sleep 0.05
  done
  local took
  took=$(since "$t0")
  for p in "${WORKERS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  WORKERS=(); COORD=
  local what="kills=$kills coordinator-restart@${restarted}s corrupt@${corrupted}s"
  if [[ $rc != 0 ]]; then
    echo "run $i: FAIL: coordinator exit status $rc ($what)"; tail -3 "$RUN/coordinator.log"; return 1
  fi
  if ! LC_ALL=C sort "$RUN"/out/mr-out-* | cmp -s - "$WORK/want"; then
    echo "run $i: FAIL: output differs from mrsequential ($what)"; return 1
  fi
  local caught=no
  grep -q "is unusable" "$RUN/coordinator.log" && caught=yes
  echo "run $i: PASS in ${took}s ($what; corruption caught by a reducer: $caught)"
  echo "$took" >> "$WORK/times"
  [[ $KEEP == 1 ]] || rm -rf "$RUN"
}

passed=0
for i in $(seq 1 "$RUNS"); do
  one_run "$i" && passed=$((passed + 1))
done
if [[ -s $WORK/times ]]; then
  echo "*** job times (s): $(tr '\n' ' ' < "$WORK/times")"
  awk '{ s += $1; if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 }
       END { printf "*** mean %.1f s, min %.1f s, max %.1f s\n", s / NR, min, max }' "$WORK/times"
fi
echo "*** chaos: $passed of $RUNS runs passed"
[[ $passed == "$RUNS" ]]
