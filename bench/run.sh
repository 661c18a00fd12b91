#!/usr/bin/env bash
# Benchmarks the framework against a hand-written word counter.
# Usage: bench/run.sh [--size 1GiB] [--files 64] [--vocabulary 500000] [--runs 3]
#                     [--dir /tmp/mr-bench] [--only NAME,...] [--reference PATH]
# --reference takes the reference counter (../shared/reference/wc-limit: its
# crate directory, built in a copy, or its binary); ratios are then against it.
# The corpus is generated into the scratch directory on first use (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
exec target/release/mr-bench "$@"
