#!/usr/bin/env bash
# The whole test suite, as CI runs it: a release build, every crate's unit and
# integration tests, the lab's test script against the real binaries, and a
# short chaos run, the multi-host run and the documented commands.
set -euo pipefail
cd "$(dirname "$0")/.."
# The status page is also checked in a real browser when one can be had.
if ! command -v chromium-headless-shell >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium-headless-shell for the status page's browser check"
    { apt-get install -y --no-install-recommends chromium-headless-shell >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 &&
        apt-get install -y --no-install-recommends chromium-headless-shell >/dev/null 2>&1; }; } ||
      echo "SKIP browser check: could not install chromium-headless-shell"
  else
    echo "SKIP browser check: chromium-headless-shell is missing (apt-get install chromium-headless-shell)"
  fi
fi
# The object store tests run against moto's S3 server on loopback.
if ! command -v moto_server >/dev/null 2>&1; then
  if command -v python3 >/dev/null 2>&1 &&
    echo "installing moto (an S3-compatible server) for the object store tests" &&
    python3 -m pip install --quiet 'moto[server]' >/dev/null 2>&1 &&
    command -v moto_server >/dev/null 2>&1; then
    :
  else
    echo "SKIP object store tests: moto_server is missing and could not be installed (pip install 'moto[server]')"
  fi
fi
# /metrics is checked with Prometheus' own parser (its Python client).
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
  if command -v python3 >/dev/null 2>&1 &&
    echo "installing prometheus_client for the metrics check" &&
    python3 -m pip install --quiet prometheus_client >/dev/null 2>&1; then
    :
  else
    echo "SKIP metrics parse: prometheus_client is missing and could not be installed (pip install prometheus_client)"
  fi
fi
cargo build --release --workspace
cargo test --release --workspace
MR_NO_BUILD=1 bash tests/test-mr.sh
# The chaos test, short: 100 MiB, one run, workers killed every 0.2-0.7 s.
MR_NO_BUILD=1 bash tests/chaos.sh --size 100MiB --runs 1 --kill-ms 200-700
# The same with workers sharing no files (a kill costs the maps it held).
MR_NO_BUILD=1 bash tests/chaos.sh --size 100MiB --runs 1 --network
# Jobs across four network-namespace hosts sharing nothing (SKIPs without root).
MR_NO_BUILD=1 bash tests/hosts.sh --size 100MiB
# A capture of a shared-nothing job's traffic shows neither token nor input.
MR_NO_BUILD=1 bash tests/capture.sh
# The commands README.md and docs/GUIDE.md show, run as written.
MR_NO_BUILD=1 bash tests/docs.sh
# The image and the Kubernetes manifests, run with podman (SKIPs without root).
MR_NO_BUILD=1 bash tests/kube.sh
