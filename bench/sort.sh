#!/usr/bin/env bash
# The MapReduce paper's sort and grep (section 5) on this machine: the
# framework's `sort` against GNU sort and the in-memory sort-limit, and its
# `grep` against grep -F, paired in the same run, every output checked.
#
#   bash bench/sort.sh [--records N] [--files F] [--runs K] [--reduces R]
#                      [--workers W] [--split-size SIZE] [--dir DIR] [--binary]
#                      [--sort-limit PATH] [--skip-gnu] [--kill-test]
#
# Defaults: 10,000,000 ASCII records (1 GB) in 16 files, 3 runs, 2 workers
# (--binary: gensort's binary records; grep is then skipped).
# Records are gensort's (mr-corpus --records, generated once into --dir and
# kept). --sort-limit is ../shared/reference/sort-limit (its crate directory,
# built in a copy, or its binary); without it that column is skipped.
# Every process's peak RSS is measured apart (the coordinator and each
# worker run under their own /usr/bin/time): the memory bound is per
# process. --kill-test adds the paper's Figure 3 in miniature (4 workers:
# undisturbed; one killed mid-map; one stopped 30 s, and one crawling at a
# fortieth of its speed, each with backups on and off). --runs 0 runs it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
records=10000000 files=16 runs=3 reduces=8 workers=2 split=64MiB
dir=${MR_BENCH_DIR:-/tmp/mr-bench}/sort sortlimit="" gnu=1 kill=0 ascii=--ascii
while [ $# -gt 0 ]; do
    case $1 in
        --records) records=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --reduces) reduces=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --split-size) split=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --sort-limit) sortlimit=$2; shift 2 ;;
        --skip-gnu) gnu=0; shift ;;
        --kill-test) kill=1; shift ;;
        --binary) ascii=""; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x /usr/bin/time ] || { echo "bench/sort.sh needs GNU time (/usr/bin/time): apt-get install time" >&2; exit 2; }
cargo build --release --workspace --quiet
bin=$root/target/release
mkdir -p "$dir"
data=$dir/in-$records${ascii:+-ascii}
if [ ! -f "$data/records-$(printf %04d $((files - 1)))" ]; then
    echo "generating $records records in $files files under $data"
    rm -rf "$data"
    "$bin/mr-corpus" --records "$records" --files "$files" $ascii "$data"
fi
inputs=("$data"/records-*)
want=$("$bin/mr-corpus" --check --unordered "${inputs[@]}")
if [ -n "$sortlimit" ] && [ -f "$sortlimit/Cargo.toml" ]; then
    rm -rf "$dir/sort-limit-src"
    cp -r "$sortlimit" "$dir/sort-limit-src"
    (cd "$dir/sort-limit-src" && cargo build --release --quiet)
    sortlimit=$dir/sort-limit-src/target/release/sort-limit
fi

# size_bytes SIZE: bytes of 64MiB, 512KiB, 1GiB or a plain number.
size_bytes() {
    local v=$1
    case $v in
        *KiB) echo $(( ${v%KiB} << 10 )) ;;
        *MiB) echo $(( ${v%MiB} << 20 )) ;;
        *GiB) echo $(( ${v%GiB} << 30 )) ;;
        *) echo "$v" ;;
    esac
}

# wait_socket PATH PID: until the coordinator PID serves PATH (fails if it
# exits first). A socket left by an earlier run is removed beforehand.
wait_socket() {
    while [ ! -S "$1" ]; do
        kill -0 "$2" 2>/dev/null || { echo "the coordinator exited before serving $1" >&2; exit 1; }
        sleep 0.01
    done
}

# time_of LOG: "seconds peak_MiB" of a /usr/bin/time -f '%e %M' log.
time_of() { tail -1 "$1" | awk '{printf "%s %.0f\n", $1, $2 / 1024}'; }

# One run of the framework: a coordinator and $1 workers started apart on
# a socket (so each has its own peak RSS), then the outputs checked.
run_mr() {
    local app=$1 nworkers=$2 out=$dir/out; shift 2
    rm -rf "$out" && mkdir -p "$out"
    local sock=$dir/sock
    rm -f "$sock"
    /usr/bin/time -f '%e %M' -o "$dir/coord.time" "$bin/mrcoordinator" --app "$app" \
        --reduces "$reduces" --split-size "$split" --socket "$sock" --no-token \
        --output-dir "$out" --quiet "$@" "${inputs[@]}" &
    local coord=$!
    wait_socket "$sock" $coord
    local w pids=()
    for w in $(seq 1 "$nworkers"); do
        /usr/bin/time -f '%e %M' -o "$dir/worker$w.time" "$bin/mrworker" \
            --coordinator "unix:$sock" "$app" 2>/dev/null &
        pids+=($!)
    done
    wait $coord
    wait "${pids[@]}" || true
    local peak=0 m
    for w in $(seq 1 "$nworkers"); do
        m=$(time_of "$dir/worker$w.time" | cut -d' ' -f2)
        [ "$m" -gt "$peak" ] && peak=$m
    done
    read -r secs cpeak < <(time_of "$dir/coord.time")
    echo "$secs $cpeak $peak"
}

check_sort() {
    local got
    got=$("$bin/mr-corpus" --check $(for r in $(seq 0 $((reduces - 1))); do echo "$dir/out/mr-out-$r"; done)) || true
    case $got in
        "$want"*SUCCESS*) ;;
        *) echo "WRONG OUTPUT: $got (inputs: $want)" >&2; exit 1 ;;
    esac
}

printf '%-5s %-22s %8s %10s %12s %s\n' run contender seconds peak_MiB ratio note
for run in $(seq 1 "$runs"); do
    gnu_s=""
    if [ $gnu = 1 ]; then
        /usr/bin/time -f '%e %M' -o "$dir/gnu.time" env LC_ALL=C sort -S 256M --parallel=2 \
            -o "$dir/gnu.out" "${inputs[@]}"
        read -r gnu_s gnu_m < <(time_of "$dir/gnu.time")
        printf '%-5s %-22s %8s %10s %12s\n' "$run" "GNU sort" "$gnu_s" "$gnu_m" ""
        rm -f "$dir/gnu.out"
    fi
    sl_s=""
    if [ -n "$sortlimit" ]; then
        /usr/bin/time -f '%e %M' -o "$dir/sl.time" "$sortlimit" "$dir/sl.out" "${inputs[@]}"
        read -r sl_s sl_m < <(time_of "$dir/sl.time")
        printf '%-5s %-22s %8s %10s %12s\n' "$run" "sort-limit" "$sl_s" "$sl_m" ""
        rm -f "$dir/sl.out"
    fi
    read -r mr_s mr_c mr_w < <(run_mr sort "$workers")
    check_sort
    ratio=""
    [ -n "$gnu_s" ] && ratio="$(awk -v a="$mr_s" -v b="$gnu_s" 'BEGIN{printf "%.2fx GNU", a/b}')"
    [ -n "$sl_s" ] && ratio="$ratio $(awk -v a="$mr_s" -v b="$sl_s" 'BEGIN{printf "%.2fx limit", a/b}')"
    printf '%-5s %-22s %8s %10s %12s %s\n' "$run" "mrcoordinator sort" "$mr_s" "$mr_w" "$ratio" \
        "coordinator ${mr_c} MiB, peak of ${workers} workers ${mr_w} MiB; output checked"
    # grep (ASCII records only: a pattern is text): a record's key from the
    # middle of the first file, as rare as the paper's pattern.
    [ -n "$ascii" ] || continue
    pattern=$(head -c $(( $(stat -c %s "${inputs[0]}") / 200 * 100 )) "${inputs[0]}" | tail -c 100 | head -c 8)
    /usr/bin/time -f '%e %M' -o "$dir/grep.time" env LC_ALL=C grep -F -a -h -- "$pattern" \
        "${inputs[@]}" >"$dir/grep.out" || true
    read -r g_s g_m < <(time_of "$dir/grep.time")
    printf '%-5s %-22s %8s %10s %12s\n' "$run" "grep -F" "$g_s" "$g_m" ""
    read -r mg_s mg_c mg_w < <(run_mr grep "$workers" --conf "pattern=$pattern")
    if ! cmp -s <(LC_ALL=C sort "$dir/grep.out") <(cat "$dir"/out/mr-out-* | LC_ALL=C sort); then
        echo "WRONG GREP OUTPUT" >&2
        exit 1
    fi
    printf '%-5s %-22s %8s %10s %12s %s\n' "$run" "mrcoordinator grep" "$mg_s" "$mg_w" \
        "$(awk -v a="$mg_s" -v b="$g_s" 'BEGIN{printf "%.2fx grep", a/b}')" "$(wc -l <"$dir/grep.out") lines; output checked"
done

[ $kill = 1 ] || exit 0
# The paper's Figure 3 in miniature: 4 workers, started apart.
figure3() {
    local what=$1 extra=()
    # The paper's tasks ran for minutes and ours for a fraction of a second:
    # a backup may start after 1 s here, not after the 10 s task timeout.
    case $what in "no backups"*) extra=(--no-backups) ;; *) extra=(--backup-after 1) ;; esac
    local out=$dir/out sock=$dir/sock sleeper=""
    rm -rf "$out" "$sock" && mkdir -p "$out"
    local start
    start=$(date +%s.%N)
    "$bin/mrcoordinator" --app sort --reduces "$reduces" --split-size "$split" --socket "$sock" \
        --no-token --output-dir "$out" --quiet "${extra[@]}" "${inputs[@]}" &
    local coord=$! pids=() w
    wait_socket "$sock" $coord
    for w in 1 2 3 4; do
        "$bin/mrworker" --threads 1 --coordinator "unix:$sock" sort 2>/dev/null &
        pids+=($!)
    done
    case $what in
        "one killed")
            # Halfway through the map phase, by the map outputs written.
            local maps total=0 f
            for f in "${inputs[@]}"; do total=$((total + $(stat -c %s "$f"))); done
            maps=$(( (total + $(size_bytes "$split") - 1) / $(size_bytes "$split") ))
            while kill -0 $coord 2>/dev/null &&
                [ "$(ls "$out/mr-job" 2>/dev/null | grep -cE '^mr-[0-9]+-[0-9]+$' || true)" -lt $((maps / 2)) ]; do
                sleep 0.02
            done
            kill -KILL "${pids[0]}" ;;
        *stopped)
            sleep 0.5
            kill -STOP "${pids[0]}"
            (sleep 30; kill -CONT "${pids[0]}" 2>/dev/null || true) &
            sleeper=$! ;;
        *crawling)
            # Slowed, not stopped: running 5 ms in every 200 (SIGSTOP/SIGCONT), so its
            # heartbeats still arrive and only a backup copy can overtake it.
            sleep 0.5
            (while kill -STOP "${pids[0]}" 2>/dev/null; do
                sleep 0.195; kill -CONT "${pids[0]}" 2>/dev/null || break; sleep 0.005
            done) &
            sleeper=$! ;;
    esac
    wait $coord
    local end
    end=$(date +%s.%N)
    if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null || true; wait "$sleeper" 2>/dev/null || true; fi
    kill -CONT "${pids[0]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    check_sort
    awk -v a="$start" -v b="$end" -v w="$what" 'BEGIN{printf "%-32s %8.2f s (output checked)\n", w, b-a}'
}
echo
echo "Figure 3 in miniature (4 workers of 1 thread each, $records records):"
figure3 "undisturbed"
figure3 "one killed"
figure3 "backups, one stopped"
figure3 "no backups, one stopped"
figure3 "backups, one crawling"
figure3 "no backups, one crawling"
