#!/usr/bin/env bash
# Object store figures: word count over a generated corpus read from local
# files or from objects in moto's S3 server on loopback, with outputs local
# or in the store. Prints wall and CPU time, peak memory, the bytes each
# worker read from the store and the coordinator's own I/O.
# Usage: bench/store.sh [--size 1GiB] [--files 64] [--runs 3] [--dir /tmp/mr-store-bench]
# Needs moto_server and boto3 (pip install 'moto[server]'). Figures from a
# Python server on the same 2 cores are a lower bound for a real store.
set -euo pipefail
cd "$(dirname "$0")/.."
size=1GiB files=64 runs=3 dir=/tmp/mr-store-bench
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
command -v moto_server >/dev/null || { echo "SKIP: moto_server is missing (pip install 'moto[server]')"; exit 0; }
python3 -c 'import boto3' 2>/dev/null || { echo "SKIP: boto3 is missing"; exit 0; }
cargo build --release --workspace --quiet
bin=$PWD/target/release
mkdir -p "$dir"
corpus=$dir/corpus-$size-$files
[ -d "$corpus" ] || "$bin/mr-corpus" --size "$size" --files "$files" "$corpus"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.2; done
echo "uploading $corpus to moto on port $port"
python3 - "$corpus" <<'EOF'
import boto3, os, sys
from concurrent.futures import ThreadPoolExecutor
d = sys.argv[1]
s3 = boto3.client('s3')
s3.create_bucket(Bucket='bench')
names = sorted(os.listdir(d))
def put(n):
    with open(os.path.join(d, n), 'rb') as f:
        s3.put_object(Bucket='bench', Key='in/' + n, Body=f.read())
with ThreadPoolExecutor(4) as ex:
    list(ex.map(put, names))
EOF

# Runs every configuration; prints wall s, CPU s (coordinator and workers),
# the largest process, the coordinator's own I/O (rchar + wchar: sockets,
# journal, files; an upper bound of its network bytes) and the bytes each worker read from the store.
python3 - "$bin" "$dir" "$corpus" "$runs" <<'EOF'
import glob, json, os, resource, subprocess, sys, time
import boto3
bin, d, corpus, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s3 = boto3.client('s3')
local_out = os.path.join(d, 'out')
os.makedirs(local_out, exist_ok=True)
def report(out):
    if out.startswith('s3://'):
        return json.loads(s3.get_object(Bucket='bench', Key='out/mr-report.json')['Body'].read())
    return json.load(open(os.path.join(out, 'mr-report.json')))
def run(inputs, out):
    work = os.path.join(d, 'work')
    subprocess.run(['rm', '-rf', work]); os.makedirs(work)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    # Workers are started apart from the coordinator (not --workers), so
    # its I/O counters are its own: a parent's include its reaped children's.
    addr_file = os.path.join(work, 'addr')
    p = subprocess.Popen([bin + '/mrcoordinator', '--quiet', '--no-socket', '--listen', '127.0.0.1:0',
                          '--addr-file', addr_file, '--app', 'wc', '--work-dir', work, '--output-dir', out]
                         + inputs, stderr=subprocess.PIPE)
    while not os.path.exists(addr_file) and p.poll() is None:
        time.sleep(0.01)
    addr = open(addr_file).read().strip() if os.path.exists(addr_file) else ''
    workers = [subprocess.Popen([bin + '/mrworker', '--coordinator', addr, 'wc']) for _ in range(2)]
    io = peak = 0
    while p.poll() is None:
        try:
            f = dict(l.split(': ') for l in open('/proc/%d/io' % p.pid).read().split('\n') if l)
            io = int(f['rchar']) + int(f['wchar'])
            for pid in [p.pid] + [w.pid for w in workers]:
                for l in open('/proc/%s/status' % pid):
                    if l.startswith('VmHWM:'):
                        peak = max(peak, int(l.split()[1]) // 1024)
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    wall = time.time() - t0
    for w in workers:
        w.wait()
    if p.returncode != 0:
        sys.exit(p.stderr.read().decode())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r = report(out)
    per = ' '.join('%.1f' % (w['object_bytes_read'] / 2**20) for w in r['workers'])
    return wall, cpu, peak, io / 2**20, per
files = sorted(glob.glob(os.path.join(corpus, '*')))
print('%-16s %7s %7s %9s %14s   %s' % ('inputs -> out', 'wall s', 'cpu s', 'peak MiB', 'coord I/O MiB', 'object MiB read per worker'))
for name, inputs, out in [('local -> local', files, local_out), ('s3 -> local', ['s3://bench/in/*'], local_out),
                          ('s3 -> s3', ['s3://bench/in/*'], 's3://bench/out/'), ('local -> s3', files, 's3://bench/out/')]:
    for i in range(runs):
        wall, cpu, peak, io, per = run(inputs, out)
        print('%-16s %7.2f %7.2f %9d %14.2f   %s' % (name, wall, cpu, peak, io, per), flush=True)
EOF
