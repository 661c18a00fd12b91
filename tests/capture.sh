#!/usr/bin/env bash
# Nothing on the wire is readable: captures the loopback traffic of a job
# whose two workers share nothing with the coordinator or each other (they
# read their inputs from the coordinator, fetch map outputs from each other
# and upload their outputs), and checks that the capture holds neither the
# job's token nor any of the marker words its input is full of. The same
# job run with --no-tls is captured as a control: there both must be found,
# so the check is known to be able to fail.
#
#   bash tests/capture.sh
#
# Needs tcpdump (installed with apt-get when run as root, else SKIP) and
# permission to capture on lo.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v tcpdump >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing tcpdump for the traffic capture check"
    { apt-get install -y --no-install-recommends tcpdump >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 &&
        apt-get install -y --no-install-recommends tcpdump >/dev/null 2>&1; }; }
  fi
  if ! command -v tcpdump >/dev/null 2>&1; then
    echo "SKIP traffic capture check: tcpdump is missing and could not be installed (apt-get install tcpdump)"
    exit 0
  fi
fi
if [[ -z ${MR_NO_BUILD:-} ]]; then
  cargo build --release --workspace --quiet || exit 1
fi
BIN=$PWD/target/release
WORK=$(mktemp -d /tmp/mr-capture.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Words no other traffic carries, many times over, among ordinary ones.
MARKERS=(quixoticzebrafish xylophonicaardvark snorkelingmarmoset)
python3 - "$WORK/in" "${MARKERS[@]}" <<'EOF' 2>/dev/null || {
import os, random, sys
out, markers = sys.argv[1], sys.argv[2:]
os.makedirs(out, exist_ok=True)
rng = random.Random(7)
common = ["the", "of", "and", "river", "stone", "light", "garden", "winter"]
for f in range(3):
    with open(f"{out}/part-{f}.txt", "w") as fh:
        for line in range(20000):
            words = [rng.choice(common) for _ in range(10)]
            words[rng.randrange(10)] = markers[(f + line) % len(markers)]
            fh.write(" ".join(words) + "\n")
EOF
  # Without Python: the same shape from the shell.
  mkdir -p "$WORK/in"
  for f in 0 1 2; do
    for ((line = 0; line < 20000; line++)); do
      echo "the river ${MARKERS[$(((f + line) % 3))]} of stone and light garden winter the"
    done >"$WORK/in/part-$f.txt"
  done
}

# Below the system's ephemeral range (ports outgoing connections hold
# without listening, which the check below cannot see).
free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  (( low > 21000 )) || low=32768
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % (low - 20000)))
    if ! (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  echo 0
}

FAILED=0
# capture NAME EXTRA_COORDINATOR_ARGS: runs the job under tcpdump; leaves
# $WORK/NAME.pcap and the outputs in $WORK/NAME/out.
capture() {
  local name=$1 extra=$2 dir=$WORK/$1 token="capture-token-$RANDOM$RANDOM"
  local port q1 q2
  port=$(free_port); q1=$(free_port); q2=$(free_port)
  mkdir -p "$dir/c/out" "$dir/w1" "$dir/w2"
  tcpdump -i lo -U -s 0 -w "$WORK/$name.pcap" \
    "tcp port $port or tcp port $q1 or tcp port $q2" 2>"$dir/tcpdump.log" &
  local dump=$!
  PIDS+=("$dump")
  for _ in $(seq 100); do grep -q "listening on" "$dir/tcpdump.log" && break; sleep 0.05; done
  (cd "$dir/c" && exec "$BIN/mrcoordinator" --quiet --no-socket --listen "127.0.0.1:$port" \
    --token "$token" --app wc --reduces 3 --split-size 256KiB --output-dir out $extra \
    "$WORK/in/*.txt") >"$dir/coordinator.log" 2>&1 &
  local coord=$!
  PIDS+=("$coord")
  local join=""
  for _ in $(seq 200); do
    [[ -s $dir/c/out/mr-job/token ]] && join=$(cat "$dir/c/out/mr-job/token") && break
    sleep 0.05
  done
  # Outside the coordinator's directory: inputs come from it, map outputs
  # from each other, outputs go back up to it.
  for w in 1 2; do
    local q=$q1; [[ $w == 2 ]] && q=$q2
    (cd "$dir/w$w" && MR_TOKEN=$join exec "$BIN/mrworker" --coordinator "127.0.0.1:$port" \
      --local-dir . --remote-inputs --shuffle-addr "127.0.0.1:$q" wc) >"$dir/w$w.log" 2>&1 &
    PIDS+=("$!")
  done
  wait "$coord"
  local st=$?
  sleep 0.3
  kill -INT "$dump" 2>/dev/null
  wait "$dump" 2>/dev/null
  if [[ $st != 0 ]]; then
    echo "FAIL $name: the job failed: $(tail -3 "$dir/coordinator.log")"
    FAILED=1
    return 1
  fi
  mkdir -p "$WORK/seq"
  [[ -f $WORK/seq/mr-out-0 ]] || "$BIN/mrsequential" --output-dir "$WORK/seq" wc "$WORK"/in/*.txt >/dev/null 2>&1
  if ! cmp -s <(sort "$dir"/c/out/mr-out-*) <(sort "$WORK/seq/mr-out-0"); then
    echo "FAIL $name: the output differs from mrsequential's"
    FAILED=1
    return 1
  fi
  echo "$token" >"$dir/token"
}

# found FILE WORD: how many times WORD occurs in FILE.
found() { grep -a -o -F "$2" "$1" | wc -l; }

capture tls "" || exit 1
capture plain "--no-tls" || exit 1
for name in tls plain; do
  pcap=$WORK/$name.pcap
  bytes=$(stat -c %s "$pcap")
  token=$(cat "$WORK/$name/token")
  t=$(found "$pcap" "$token")
  words=0
  for m in "${MARKERS[@]}"; do words=$((words + $(found "$pcap" "$m"))); done
  printf 'capture %-5s %8d bytes on the wire: token seen %d times, marker words seen %d times\n' \
    "$name" "$bytes" "$t" "$words"
  if [[ $bytes -lt 1000000 ]]; then
    echo "FAIL $name: only $bytes bytes captured; the job's data did not cross the captured ports"
    FAILED=1
  fi
  if [[ $name == tls && ($t != 0 || $words != 0) ]]; then
    echo "FAIL: the encrypted job's traffic shows its token or its input"
    FAILED=1
  fi
  if [[ $name == plain && ($t == 0 || $words == 0) ]]; then
    echo "FAIL: the control (--no-tls) shows neither token nor input: the check cannot tell"
    FAILED=1
  fi
done
if [[ $FAILED == 0 ]]; then
  echo "capture check passed: nothing readable on the wire with TLS"
fi
exit $FAILED
