#!/usr/bin/env bash
# The image and the Kubernetes manifests, run for real: podman builds the
# image from the Dockerfile (on a Debian base made here with debootstrap: no
# registry is reachable) and `podman kube play` runs deploy/kubernetes/ (the
# Secrets, the ConfigMap, the coordinator and three workers sharing
# nothing), inputs and outputs in moto's S3 server on the host. One worker
# pod is stopped mid-job (SIGTERM, as a deletion does); the job must still
# finish, and its outputs equal mrsequential's.
#
# podman 4.3 (Debian 12) runs Pods, Deployments and ConfigMaps, not Jobs or
# Services: each Job is run as the Pod of its template (named after the Job;
# a Job of parallelism N as N pods), and the Service's name is the
# coordinator pod's name on the test's network. Its Secrets are broken (see
# below): they are made with `podman secret create` from the same data. Otherwise the YAML runs as
# written, but for the S3 endpoint (this test's server) and a small split
# size (so three workers share the small inputs).
#
#   bash tests/kube.sh            (as root; installs podman, runc and friends)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
skip() { echo "SKIP kube test: $*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root (podman with runc, network namespaces)"
need=()
for c in podman runc debootstrap catatonit netavark aardvark-dns openssl; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/lib/podman/$c" ] || need+=("$c")
done
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || skip "missing ${need[*]} and no apt-get"
    echo "installing podman, runc, netavark, aardvark-dns, catatonit, debootstrap for the kube test"
    pkgs="podman runc netavark aardvark-dns catatonit debootstrap openssl uidmap"
    { apt-get install -y --no-install-recommends $pkgs >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends $pkgs >/dev/null 2>&1; }; } ||
        skip "could not install $pkgs"
fi
command -v moto_server >/dev/null || skip "moto_server is missing (pip install 'moto[server]')"
python3 -c 'import yaml, boto3' 2>/dev/null ||
    python3 -m pip install --quiet pyyaml boto3 >/dev/null 2>&1 ||
    skip "python3 with pyyaml and boto3 is missing (pip install pyyaml boto3)"
[ -n "${MR_NO_BUILD:-}" ] || cargo build --release --locked --bin mrcoordinator --bin mrworker --bin mrsequential --bin mrstatus

tmp=$(mktemp -d /tmp/mr-kube.XXXXXX)
net=mr-kube-$$
# podman's own state lives in the test's directory: nothing of the host's
# podman is touched. netavark (DNS by pod name) and runc (crun fails on
# these cgroups); explicit ulimits (the host's defaults are refused).
cat >"$tmp/containers.conf" <<'CONF'
[network]
network_backend = "netavark"
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
CONF
export CONTAINERS_CONF=$tmp/containers.conf
pm="podman --root $tmp/storage --runroot $tmp/run"
moto=""
cleanup() {
    set +e
    [ -n "$moto" ] && kill "$moto" 2>/dev/null && wait "$moto" 2>/dev/null
    $pm pod rm -af -t 0 >/dev/null 2>&1
    $pm network rm -f "$net" >/dev/null 2>&1
    $pm system reset -f >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

# The base image, as the Dockerfile names it, from Debian's packages (the
# rootfs is kept in /var/tmp for the next run).
base=/var/tmp/mr-kube-bookworm-minbase.tar
if [ ! -s "$base" ]; then
    echo "making the Debian base image with debootstrap (once)"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$tmp/rootfs" \
        http://deb.debian.org/debian >"$tmp/debootstrap.log" 2>&1 ||
        skip "debootstrap failed: $(tail -1 "$tmp/debootstrap.log")"
    rm -rf "$tmp"/rootfs/usr/share/{doc,man,info}/* "$tmp"/rootfs/var/cache/apt/* "$tmp"/rootfs/var/lib/apt/lists/*
    tar -C "$tmp/rootfs" -cf "$base.part" . && mv "$base.part" "$base"
    rm -rf "$tmp/rootfs"
fi
$pm import "$base" localhost/debian:bookworm-slim >/dev/null
CONTAINER_ENGINE=$pm bash deploy/image.sh --no-build --tag localhost/mapreduce:latest >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log"; echo "FAIL: the image did not build"; exit 1; }
tail -1 "$tmp/build.log"
[ "$($pm run --rm localhost/mapreduce:latest id -u)" = 10001 ] || { echo "FAIL: the image runs as root"; exit 1; }

$pm network create "$net" >/dev/null
# The host as the pods see it: the network's gateway.
gateway=$($pm network inspect "$net" --format '{{range .Subnets}}{{.Gateway}}{{end}}')

# moto on the host. It listens on every address because the gateway's
# address exists only once a pod is up; the pods reach it at the gateway.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 0.0.0.0 -p "$port" >"$tmp/moto.log" 2>&1 &
moto=$!
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
for _ in $(seq 100); do
    curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.1
done
mkdir -p "$tmp/in"
for f in data/pg-*.txt; do
    for i in 1 2 3; do cp "$f" "$tmp/in/$i-$(basename "$f")"; done
done
python3 - "$tmp/in" <<'PY'
import boto3, os, sys
s3 = boto3.client("s3")
s3.create_bucket(Bucket="mapreduce")
for name in sorted(os.listdir(sys.argv[1])):
    s3.upload_file(os.path.join(sys.argv[1], name), "mapreduce", "in/" + name)
PY

# The manifests as podman can run them (see the top of this file).
bash deploy/kubernetes/make-secrets.sh >"$tmp/secrets.yaml"
python3 - deploy/kubernetes "$tmp" "http://$gateway:$port" <<'PY'
import copy, json, sys, yaml
src, out, endpoint = sys.argv[1:]
# podman 4.3 stores a played Secret as YAML text but reads secretKeyRef
# from a JSON map of base64 values (the Secret's `data`): each Secret is
# created from its data, as `podman secret create NAME FILE`.
for d in yaml.safe_load_all(open(f"{out}/secrets.yaml")):
    json.dump(d["data"], open(f"{out}/secret-{d['metadata']['name']}.json", "w"))
def load(name):
    return [d for d in yaml.safe_load_all(open(f"{src}/{name}")) if d]
def pods_of(job):
    spec = job["spec"]
    n = spec.get("parallelism", 1)
    pods = []
    for i in range(n):
        t = copy.deepcopy(spec["template"])
        name = job["metadata"]["name"] + (f"-{i}" if n > 1 else "")
        t["spec"]["restartPolicy"] = "Never"
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "labels": t["metadata"].get("labels", {})},
                     "spec": t["spec"]})
    return pods
config = load("config.yaml")
for d in config:
    if d["kind"] == "ConfigMap":
        d["data"]["AWS_ENDPOINT_URL"] = endpoint
coordinator = [p for d in load("coordinator.yaml") if d["kind"] == "Job" for p in pods_of(d)]
for p in coordinator:
    p["spec"]["containers"][0]["args"].insert(0, "--split-size=64KiB")
workers = [p for d in load("workers.yaml") if d["kind"] == "Job" for p in pods_of(d)]
yaml.safe_dump_all(config + coordinator, open(f"{out}/coordinator.yaml", "w"))
# Each play knows only the ConfigMaps in its own file.
yaml.safe_dump_all(config + workers, open(f"{out}/workers.yaml", "w"))
PY
for f in "$tmp"/secret-*.json; do
    name=${f##*/secret-}
    $pm secret create "${name%.json}" "$f" >/dev/null
done
$pm kube play --network "$net" "$tmp/coordinator.yaml" >"$tmp/play.log" 2>&1 || { cat "$tmp/play.log"; exit 1; }
coord=mapreduce-coordinator-coordinator
status=$($pm inspect "$coord" --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}"):8080
for _ in $(seq 100); do
    curl -sf "http://$status/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://$status/readyz" >/dev/null || { $pm logs "$coord" 2>&1 | tail -5; echo "FAIL: the coordinator is not ready"; exit 1; }
$pm kube play --network "$net" "$tmp/workers.yaml" >>"$tmp/play.log" 2>&1 || { cat "$tmp/play.log"; exit 1; }
# Mid-job: some maps done, not all; then the pod is deleted as Kubernetes
# does it: SIGTERM to its container (SIGKILL after the grace period), the
# pod's network kept until the container has exited. (`podman pod stop`
# would stop the pod's infra container, and so its network, at once.)
metric() { curl -sf "http://$status/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
started=$(date +%s)
until [ "$(metric 'mapreduce_tasks{phase="map",state="done"}')" -ge 3 ] 2>/dev/null; do
    [ $(( $(date +%s) - started )) -lt 120 ] || { $pm logs "$coord" 2>&1 | tail -5; echo "FAIL: no map finished in 120 s"; exit 1; }
    sleep 0.1
done
idle=$(metric 'mapreduce_tasks{phase="map",state="idle"}')
t0=$(date +%s.%N)
$pm stop -t 30 mapreduce-workers-1-worker >/dev/null
victim=$($pm inspect mapreduce-workers-1-worker --format '{{.State.ExitCode}}')
$pm logs mapreduce-workers-1-worker >"$tmp/victim.log" 2>&1
$pm pod rm -f -t 0 mapreduce-workers-1 >/dev/null 2>&1
echo "deleted worker pod mapreduce-workers-1 with $idle maps still idle; it stopped in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"

rc=$($pm wait "$coord" 2>/dev/null | tail -1)
if [ "$rc" != 0 ]; then
    for w in 0 1 2; do
        echo "== worker $w"
        $pm logs "mapreduce-workers-$w-worker" 2>&1 | grep -v '"level":"INFO"' | tail -5
    done
    echo "== coordinator"
    $pm logs "$coord" 2>&1 | grep -v "lost worker's disk" | tail -12
    echo "FAIL: the coordinator exited $rc"
    exit 1
fi
for w in 0 2; do
    c=$($pm wait "mapreduce-workers-$w-worker" 2>/dev/null | tail -1)
    [ "$c" = 0 ] || { $pm logs "mapreduce-workers-$w-worker" 2>&1 | tail -5; echo "FAIL: worker $w exited $c"; exit 1; }
done
[ "$victim" = 0 ] || { tail -8 "$tmp/victim.log"; echo "FAIL: the stopped worker exited $victim, not 0 (a graceful stop)"; exit 1; }
# Every log line is JSON (MR_LOG_FORMAT=json in the manifests).
$pm logs "$coord" 2>&1 | python3 -c '
import json, sys
lines = [l for l in sys.stdin if l.strip()]
for l in lines: json.loads(l)
assert any("job complete" in json.loads(l).get("message", "") for l in lines), "no summary event"'

# The outputs, from the store, against mrsequential over the same inputs.
python3 - "$tmp/out" <<'PY'
import boto3, os, sys
s3 = boto3.client("s3")
os.makedirs(sys.argv[1])
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mapreduce", Prefix="out/")["Contents"]]
outs = [k for k in keys if os.path.basename(k).startswith("mr-out-")]
assert len(outs) == 8, keys
for k in outs:
    s3.download_file("mapreduce", k, os.path.join(sys.argv[1], os.path.basename(k)))
# A graceful stop costs no strike: the only failures are the stopped
# worker's map outputs going with it (worker_lost, and map_output_lost for
# a reduce that was fetching them), never the app, disk or input.
import json
report = json.loads(s3.get_object(Bucket="mapreduce", Key="out/mr-report.json")["Body"].read())
reasons = set(report["progress"]["failures"])
assert reasons <= {"worker_lost", "map_output_lost"}, report["progress"]
PY
(cd "$tmp" && "$root/target/release/mrsequential" wc "$tmp"/in/* >/dev/null 2>&1)
if ! cmp -s <(sort "$tmp/mr-out-0") <(cat "$tmp"/out/mr-out-* | sort); then
    echo "FAIL: the outputs differ from mrsequential's"
    exit 1
fi
size=$(tail -1 "$tmp/build.log" | awk '{print $(NF-1)}')
echo "PASS kube: image of $size bytes; a coordinator and 3 worker pods, one stopped mid-job; outputs equal mrsequential's ($(wc -l <"$tmp/mr-out-0") words)"
