#!/usr/bin/env bash
# Incremental re-runs (--cache): times a job over a corpus without the
# cache, then with it: the first run (hashing and storing), a re-run with
# nothing changed, a re-run after a line is inserted in the middle of one
# file, and a re-run after a new file is added. Every cached run's output
# is compared, file by file, with a fresh run's without the cache.
# Usage: bench/incremental.sh [--size 1GiB] [--files 64] [--app wc]
#                             [--workers 2] [--dir /tmp/mr-bench]
#                             [--cache s3://BUCKET/prefix]
# With --cache URL the cache lives in that object store (AWS_ENDPOINT_URL
# and credentials from the environment; the prefix should start empty);
# by default it is a directory beside the runs.
# The corpus is generated into the scratch directory on first use; the
# runs work on a copy of it (the edits must not touch the corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
size=1GiB files=64 app=wc workers=2 dir=${MR_BENCH_DIR:-/tmp/mr-bench} cache=cache
while [ $# -gt 0 ]; do
    case "$1" in
    --size) size=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --app) app=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    *) echo "bench/incremental.sh: unknown argument '$1' (see the usage at the top of the script)" >&2; exit 2 ;;
    esac
done
cargo build --release --quiet -p mr-coordinator -p mr-worker -p mr-bench
bin=$PWD/target/release
corpus=$dir/corpus-$size-$files
if [ ! -e "$corpus/.complete" ]; then
    echo "generating the $size corpus in $corpus ..." >&2
    "$bin/mr-corpus" --size "$size" --files "$files" "$corpus"
    touch "$corpus/.complete"
fi
work=$dir/incremental
rm -rf "$work"
mkdir -p "$work/in"
cp "$corpus"/*.txt "$work/in/"
cd "$work"

# run NAME [--cache]: one job into out-NAME; prints its seconds.
run() {
    local name=$1
    shift
    rm -rf "out-$name"
    mkdir "out-$name"
    cat in/* >/dev/null # the inputs in the page cache, as for every run
    local t0 t1
    t0=$(date +%s.%N)
    "$bin/mrcoordinator" --quiet --no-socket --app "$app" --workers "$workers" \
        --output-dir "out-$name" "$@" 'in/*' 2>"err-$name" || {
        echo "the '$name' run failed:" >&2
        cat "err-$name" >&2
        exit 1
    }
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}

# same A B: the mr-out files of two runs are equal.
same() {
    for f in out-"$1"/mr-out-*; do
        cmp -s "$f" "out-$2/$(basename "$f")" || {
            echo "MISMATCH: out-$1 and out-$2 differ at $(basename "$f")" >&2
            exit 1
        }
    done
}

# reused NAME: maps and reduces the run took from the cache, and the
# reduces that copied pieces of an earlier output.
reused() {
    local r=out-$1/mr-report.json
    local m k p c
    m=$(grep -o '"maps_reused": *[0-9]*' "$r" | grep -o '[0-9]*$' || echo 0)
    k=$(grep -o '"reduces_reused": *[0-9]*' "$r" | grep -o '[0-9]*$' || echo 0)
    p=$(grep -o '"reduces_partly_reused": *[0-9]*' "$r" | grep -o '[0-9]*$' || echo 0)
    c=$(grep -o '"output_bytes_copied": *[0-9]*' "$r" | grep -o '[0-9]*$' || echo 0)
    echo "$m maps, $k reduces; $p copied $c bytes"
}

# report NAME LABEL SECONDS: a line of the table.
report() {
    printf '%-38s %7.3f s %6.1f%%   reused %s\n' "$2" "$3" \
        "$(echo "$3 $base" | awk '{ print 100 * $1 / $2 }')" "$(reused "$1")"
}

base=$(run fresh)
run fresh >/dev/null # the second of two, as the others run warm
base=$(run fresh)
printf '%-38s %7.3f s %6.1f%%\n' "no cache" "$base" 100
t=$(run first --cache "$cache")
same first fresh
report first "first run with the cache" "$t"
t=$(run unchanged --cache "$cache")
same unchanged fresh
report unchanged "re-run, nothing changed" "$t"

# A line inserted in the middle of the file a third of the way through.
edit=$(ls in | sed -n "$(((files + 2) / 3))p")
lines=$(wc -l <"in/$edit")
sed -i "$((lines / 2))i\\an inserted line of words for the incremental benchmark" "in/$edit"
t=$(run edited --cache "$cache")
run edited-fresh >/dev/null
same edited edited-fresh
report edited "re-run, a line inserted in $edit" "$t"

# A line of one word inserted in another file: one partition changes.
edit=$(ls in | sed -n "$(((2 * files + 2) / 3))p")
lines=$(wc -l <"in/$edit")
sed -i "$((lines / 2))i\\zyzzyva" "in/$edit"
t=$(run word --cache "$cache")
run word-fresh >/dev/null
same word word-fresh
report word "re-run, a one-word line in $edit" "$t"

# A new file of 1/64 of the corpus, sorted last.
"$bin/mr-corpus" --size "$(($(du -bc in/*.txt | tail -1 | cut -f1) / files))" --files 1 \
    --seed 7 new >/dev/null
mv new/*.txt in/zz-new.txt
t=$(run appended --cache "$cache")
run appended-fresh >/dev/null
same appended appended-fresh
report appended "re-run, one new file" "$t"
case "$cache" in
s3://*) echo "cache: $cache; outputs equal fresh runs' in every case" ;;
*) echo "cache: $(du -sh "$cache" | cut -f1); outputs equal fresh runs' in every case" ;;
esac
