#!/usr/bin/env bash
# The whole test suite, as CI runs it: a release build, every crate's unit and
# integration tests, the lab's test script against the real binaries, and a
# short chaos run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
cargo test --release --workspace
MR_NO_BUILD=1 bash tests/test-mr.sh
# The chaos test, short: 100 MiB, one run, workers killed every 0.2-0.7 s.
MR_NO_BUILD=1 bash tests/chaos.sh --size 100MiB --runs 1 --kill-ms 200-700
