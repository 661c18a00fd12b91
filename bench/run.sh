#!/usr/bin/env bash
# Benchmarks the framework against a hand-written word counter.
# Usage: bench/run.sh [--size 1GiB] [--files 64] [--runs 3] [--dir /tmp/mr-bench] [--only NAME,...]
# The corpus is generated into the scratch directory on first use (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
exec target/release/mr-bench "$@"
