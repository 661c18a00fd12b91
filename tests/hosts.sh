#!/usr/bin/env bash
# Several hosts on one machine: network namespaces joined by a bridge, each
# with its own private working directory and nothing else in common.
#
#   h0  10.231.N.1  mrcoordinator; holds the inputs and the outputs
#   h1  10.231.N.2  mrworker; also sees the inputs (a "replica": its maps are local)
#   h2  10.231.N.3  mrworker; sees no input: fetches its splits from the coordinator
#   h3  10.231.N.4  mrworker; likewise
#
# The bridge lives in a fifth namespace, so the machine's own network is not
# touched and traffic stays on these namespaces' addresses. Each worker host
# runs in its own mount namespace in which the coordinator's directory and
# the other hosts' directories are hidden under empty tmpfs mounts: map
# outputs must be fetched over the network from the worker holding them,
# reduce outputs uploaded to the coordinator.
#
# Runs wc and indexer over data/ and over a generated corpus (--size, at
# least 100 MiB by default), each compared with mrsequential byte for byte;
# then wc over the corpus again while every process of one worker host is
# killed after the map phase (one holding map outputs, which go with it);
# then the same corpus with one worker host, for the speed comparison; then
# a worker on the coordinator's host (sharing its directory) mixed with two
# outside it. Prints job times, bytes shuffled, fetch throughput and
# recovery time.
#
#   bash tests/hosts.sh [--size 128MiB] [--keep]
#
# Needs root (namespaces, mounts) and iproute2; without them it prints SKIP
# and exits 0. MR_NO_BUILD=1 skips the build; MR_BIN=DIR takes binaries from DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${MR_BIN:-$REPO/target/release}
SIZE=128MiB
KEEP=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --size) SIZE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--size 128MiB] [--keep]" >&2; exit 2 ;;
  esac
done

skip() { echo "SKIP multi-host test: $*"; exit 0; }
[[ $(id -u) == 0 ]] || skip "needs root to create network namespaces (run as root, or in CI)"
command -v ip >/dev/null || skip "iproute2's ip is missing (apt-get install iproute2)"
command -v unshare >/dev/null || skip "unshare is missing (util-linux)"

if [[ -z "${MR_NO_BUILD:-}" ]]; then
  cargo build --release --workspace --quiet || exit 1
fi

TAG=$$
NET=$(( 10 + TAG % 200 ))           # 10.231.$NET.0/24, per run
NS=(mr$TAG-h0 mr$TAG-h1 mr$TAG-h2 mr$TAG-h3)
SW=mr$TAG-sw
ADDR=(10.231.$NET.1 10.231.$NET.2 10.231.$NET.3 10.231.$NET.4)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mr-hosts.XXXXXX")
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

cleanup() {
  for ns in "${NS[@]}" "$SW"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  sleep 0.2
  for ns in "${NS[@]}" "$SW"; do ip netns del "$ns" 2>/dev/null; done
  [[ $KEEP == 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$SW" 2>/dev/null || skip "cannot create network namespaces here (ip netns add failed)"
# Whatever else the environment lacks is a SKIP too, naming what.
ip -n "$SW" link add br0 type bridge 2>/dev/null && ip -n "$SW" link set br0 up && ip -n "$SW" link set lo up ||
  skip "cannot create a bridge in a namespace (no bridge support)"
for i in 0 1 2 3; do
  ip netns add "${NS[$i]}" || skip "cannot create namespace ${NS[$i]}"
  ip link add "mr${TAG}v$i" type veth peer name "mr${TAG}p$i" 2>/dev/null || skip "cannot create veth pairs (no veth support)"
  ip link set "mr${TAG}v$i" netns "${NS[$i]}" &&
    ip link set "mr${TAG}p$i" netns "$SW" &&
    ip -n "$SW" link set "mr${TAG}p$i" master br0 up &&
    ip -n "${NS[$i]}" link set lo up &&
    ip -n "${NS[$i]}" addr add "${ADDR[$i]}/24" dev "mr${TAG}v$i" &&
    ip -n "${NS[$i]}" link set "mr${TAG}v$i" up || skip "cannot wire namespace ${NS[$i]} to the bridge"
  mkdir -p "$WORK/h$i"
done
ip netns exec "${NS[1]}" unshare --mount --propagation private bash -c "mount -t tmpfs none $WORK/h0" 2>/dev/null ||
  skip "cannot give hosts private mounts (unshare --mount, mount -t tmpfs)"

# Let the links come up (workers also retry connecting for 5 s).
sleep 0.3

# Inputs: the lab texts and a generated corpus, in a directory h0 and h1 see.
IN=$WORK/inputs
mkdir -p "$IN/data"
cp data/pg-*.txt "$IN/data/"
"$BIN/mr-corpus" --size "$SIZE" --files 12 --vocabulary 300000 "$IN/corpus" >/dev/null || exit 1

# Runs a worker on host i: private mount namespace, other hosts hidden;
# JOIN is the job's join secret (token and certificate fingerprint).
start_worker() {
  local i=$1 app=$2 join=$3 hide="" j
  for j in 0 1 2 3; do [[ $j != "$i" ]] && hide+="mount -t tmpfs none $WORK/h$j; "; done
  [[ $i != 1 ]] && hide+="mount -t tmpfs none $IN; "
  mkdir -p "$WORK/h$i/local"
  # In a subshell, so the shell does not report the host being killed.
  (ip netns exec "${NS[$i]}" unshare --mount --propagation private bash -c "
    $hide
    cd $WORK/h$i && MR_TOKEN=$join exec $BIN/mrworker --coordinator ${ADDR[0]}:7070 \
      --local-dir $WORK/h$i/local $app" >>"$WORK/h$i/worker.log" 2>&1 &)
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
counter() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['counters'].get(sys.argv[2], 0))" "$1" "$2" 2>/dev/null ||
  grep -o "\"$2\": *[0-9]*" "$1" | grep -o '[0-9]*$'; }

FAILED=0
# run NAME APP INPUT_GLOB SPLIT_SIZE WORKER_HOSTS [KILL_HOST]
# (LISTEN=ADDR and EXTRA="ARGS" change the coordinator's address and add arguments)
run() {
  local name=$1 app=$2 glob=$3 split=$4 hosts=$5 kill_host=${6:-} out=$WORK/h0/out-$1
  mkdir -p "$out"
  local t0; t0=$(now)
  ip netns exec "${NS[0]}" bash -c "cd $WORK/h0 && MR_TOKEN=$TOKEN exec $BIN/mrcoordinator --quiet \
    --app $app --listen ${LISTEN:-${ADDR[0]}:7070} ${EXTRA:-} --output-dir $out --split-size $split --reduces 7 '$glob'" \
    >"$WORK/h0/$name.log" 2>&1 &
  local coord=$!
  # Remote workers need the join secret the coordinator keeps in its job
  # directory (written before it listens).
  local join=""
  for _ in $(seq 200); do
    [[ -s $out/mr-job/token ]] && join=$(cat "$out/mr-job/token") && break
    sleep 0.05
  done
  for h in $hosts; do start_worker "$h" "$app" "$join"; done
  local killed_at=""
  if [[ -n $kill_host ]]; then
    # After the map phase (once a reducer is fetching somewhere), a host
    # that holds map outputs and is not itself fetching.
    for _ in $(seq 3000); do
      if ls -d "$WORK"/h*/local/mr-worker-*/fetch-* >/dev/null 2>&1; then
        for h in $hosts; do
          if ls "$WORK/h$h"/local/mr-worker-*/mr-* >/dev/null 2>&1 &&
            ! ls -d "$WORK/h$h"/local/mr-worker-*/fetch-* >/dev/null 2>&1; then
            kill_host=$h
          fi
        done
        break
      fi
      sleep 0.01
    done
    killed_at=$(now)
    for p in $(ip netns pids "${NS[$kill_host]}"); do kill -9 "$p" 2>/dev/null; done
  fi
  wait "$coord"; local st=$?
  local t1; t1=$(now)
  # Workers leave when told the job is over; give them a moment, then count
  # any still there as a failure.
  local left=""
  for _ in $(seq 100); do
    left=$(for h in $hosts; do ip netns pids "${NS[$h]}"; done)
    [[ -z $left ]] && break
    sleep 0.1
  done
  wait 2>/dev/null
  local seq=$WORK/seq-$app-$(basename "$(dirname "$glob")")
  if [[ ! -f $seq/mr-out-0 ]]; then
    mkdir -p "$seq" && "$BIN/mrsequential" --output-dir "$seq" "$app" $glob >/dev/null 2>&1
  fi
  local verdict=ok
  if [[ $st != 0 ]]; then
    verdict="FAIL (coordinator exit $st: $(tail -3 "$WORK/h0/$name.log" | tr '\n' ' '))"
  elif ! cmp -s <(sort "$out"/mr-out-*) <(sort "$seq/mr-out-0"); then
    verdict="FAIL (output differs from mrsequential)"
  fi
  # Without a kill nothing may be lost (e.g. a holder advertising an
  # address other hosts cannot reach).
  if [[ -z $kill_host && $verdict == ok ]] && grep -q "is unusable" "$WORK/h0/$name.log"; then
    verdict="FAIL (map outputs lost without a fault: $(grep -m1 "is unusable" "$WORK/h0/$name.log" | cut -c1-200))"
  fi
  if [[ -n $left ]]; then
    verdict="FAIL (workers still running 10 s after the job: $left)"
    kill -9 $left 2>/dev/null
  fi
  [[ $verdict == ok ]] || FAILED=1
  local rep=$out/mr-report.json
  local sb sm fb; sb=$(counter "$rep" "shuffle bytes fetched"); sm=$(counter "$rep" "shuffle fetch ms")
  fb=$(counter "$rep" "input bytes fetched")
  local rate="-"
  [[ ${sm:-0} -gt 0 ]] && rate=$(awk -v b="$sb" -v m="$sm" 'BEGIN { printf "%.0f MB/s", b / m / 1000 }')
  printf '%-28s %-5s %7ss  shuffled %6.1f MiB (per-reduce fetch %s)  inputs fetched %6.1f MiB' \
    "$name" "$verdict" "$(elapsed "$t0" "$t1")" "$(awk -v b="${sb:-0}" 'BEGIN { print b / 1048576 }')" "$rate" \
    "$(awk -v b="${fb:-0}" 'BEGIN { print b / 1048576 }')"
  if [[ -n $killed_at ]]; then
    local rerun; rerun=$(grep -c "its output was on a lost worker's disk" "$WORK/h0/$name.log")
    printf '  host h%s killed at %ss, job done %ss later, %s maps re-run' "$kill_host" \
      "$(elapsed "$t0" "$killed_at")" "$(elapsed "$killed_at" "$t1")" "$rerun"
    if [[ $rerun == 0 ]]; then
      echo; echo "FAIL: the killed host held no map output the job needed again"; FAILED=1
    fi
  fi
  echo
  [[ $verdict == ok ]] || { tail -20 "$WORK/h0/$name.log"; }
}

echo "multi-host test: 4 namespaces on 10.231.$NET.0/24, corpus $SIZE, work dir $WORK"
run data-wc wc "$IN/data/*.txt" 256KiB "1 2 3"
run data-indexer indexer "$IN/data/*.txt" 256KiB "1 2 3"
run corpus-wc wc "$IN/corpus/*.txt" 8MiB "1 2 3"
run corpus-indexer indexer "$IN/corpus/*.txt" 8MiB "1 2 3"
# The index shuffles seven times what the count does: its reduces are still
# fetching when the host goes (the count's were done within 10 ms of it).
run corpus-indexer-host-killed indexer "$IN/corpus/*.txt" 8MiB "1 2 3" 3  # 3 unless another host fits better
run corpus-wc-one-host wc "$IN/corpus/*.txt" 8MiB "2"
# The same job on a plain wire: what the encryption costs.
EXTRA="--no-tls" run corpus-wc-plain wc "$IN/corpus/*.txt" 8MiB "1 2 3"
# A worker on the coordinator's host, in its directory, with two outside it:
# the coordinator listens on every interface, its embedded worker advertises
# loopback, and the outside reducers fetch from it at the coordinator's address.
LISTEN=0.0.0.0:7070 EXTRA="--workers 1" run mixed-indexer indexer "$IN/data/*.txt" 128KiB "2 3"
if [[ $FAILED != 0 ]]; then echo "multi-host test FAILED"; exit 1; fi
echo "multi-host test passed"
