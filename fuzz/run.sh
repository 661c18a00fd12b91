#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) with cargo-fuzz
# (libFuzzer), one after another, and prints each one's executions per
# second and what it found. Exits non-zero if any target failed.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# New corpus inputs land in fuzz/corpus/<target>/ (minimize them with
# `cargo fuzz cmin <target>` before committing); an input that makes a
# target fail is saved in fuzz/regressions/<target>/, which the ordinary
# test suite replays (mr-fuzz/tests/corpus.rs): commit it with the fix.
#
# Needs cargo-fuzz (installed from crates.io when missing). The stable
# toolchain runs it with RUSTC_BOOTSTRAP=1 for the sanitizer-coverage
# flags. Builds with debug assertions (so integer overflow is a crash) and
# without AddressSanitizer: the targets are safe Rust over the product's
# parsers, where ASan finds little and halves the executions per second.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# The targets' scratch files (a run file, a compressed input) go to memory,
# in a directory of this run's own (several runs may go on at once).
scratch_base=/tmp
[ -d /dev/shm ] && scratch_base=/dev/shm
export MR_FUZZ_SCRATCH=$scratch_base/mr-fuzz-run-$$
mkdir -p "$MR_FUZZ_SCRATCH"
trap 'rm -rf "$MR_FUZZ_SCRATCH"' EXIT

# Seeds made by the product's own writers start every corpus.
(cd .. && cargo test -q -p mr-fuzz --test corpus -- --ignored write_seeds >/dev/null)
cargo fuzz build -s none -a

failed=()
printf '%-12s %10s %12s %10s %s\n' target seconds executions execs/s result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "regressions/$t"
    log=$(mktemp)
    # -rss_limit_mb: a target that needs more than this is itself a finding
    # (a parser made to allocate without bound).
    if cargo fuzz run -s none -a "$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
        -timeout=10 -artifact_prefix="regressions/$t/" >"$log" 2>&1; then
        result=clean
    else
        result="FAILED (see regressions/$t/)"
        failed+=("$t")
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 >&2 || true
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    printf '%-12s %10s %12s %10s %s\n' "$t" "$secs" "${runs:-?}" "${rate:-?}" "$result"
    rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found failures in: ${failed[*]}" >&2
    exit 1
fi
