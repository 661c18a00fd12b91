#!/usr/bin/env bash
# The whole test suite, as CI runs it: a release build, every crate's unit and
# integration tests, then the lab's test script against the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
cargo test --release --workspace
MR_NO_BUILD=1 bash tests/test-mr.sh
