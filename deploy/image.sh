#!/usr/bin/env bash
# Builds the image `mapreduce:latest` from the Dockerfile at the top of the
# repository: a release build, the four binaries stripped into
# target/image/, then `podman build` (or `docker build`).
#
#   bash deploy/image.sh [--tag NAME] [--no-build] [-- extra build flags]
set -euo pipefail
cd "$(dirname "$0")/.."
tag=mapreduce:latest build=1
while [ $# -gt 0 ]; do
    case $1 in
        --tag) tag=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --) shift; break ;;
        *) echo "unknown argument $1 (give --tag NAME, --no-build, or -- flags for the builder)" >&2; exit 2 ;;
    esac
done
engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1; then engine=podman
    elif command -v docker >/dev/null 2>&1; then engine=docker
    else echo "neither podman nor docker is installed (apt-get install podman)" >&2; exit 1
    fi
fi
bins="mrcoordinator mrworker mrsequential mrstatus"
if [ $build = 1 ]; then
    cargo build --release --locked $(printf -- '--bin %s ' $bins)
fi
mkdir -p target/image
for b in $bins; do
    [ -x "target/release/$b" ] || { echo "target/release/$b is missing: run cargo build --release" >&2; exit 1; }
    # Debug line tables are for profiling on the host: the image goes without.
    if command -v strip >/dev/null 2>&1; then
        strip -o "target/image/$b" "target/release/$b"
    else
        cp "target/release/$b" "target/image/$b"
    fi
done
# $engine may carry global flags (podman --root ... in the tests).
$engine build -t "$tag" -f Dockerfile "$@" .
$engine image inspect "$tag" --format "built $tag: {{.Size}} bytes" 2>/dev/null || true
