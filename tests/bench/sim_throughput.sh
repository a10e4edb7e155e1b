#!/usr/bin/env bash
# Benchmark: the simulator's upload and download throughput over loopback with curl.
# Uploads a file (default 512 MiB) through an upload session in 10 MiB fragments, then downloads
# it through the pre-authenticated URL, and prints MB/s for each direction.
#   usage: tests/bench/sim_throughput.sh [SIZE_MIB]
# Builds the release binary if needed. Not a test: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-512}
frag=$((10 * 1024 * 1024))
cargo build --release --quiet
work=$(mktemp -d)
data=${SPGATE_BENCH_DATA:-$work/data}
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

./target/release/spgate sim --listen 127.0.0.1:0 --data "$data" >"$work/out" 2>"$work/err" &
sim_pid=$!
until grep -q '^listening on ' "$work/out" 2>/dev/null; do
  kill -0 "$sim_pid" || { cat "$work/err"; exit 1; }
  sleep 0.05
done
base=$(sed -n 's/^listening on //p' "$work/out")
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
token=$(curl -sf -d "grant_type=client_credentials&client_id=spgate-demo&client_secret=demo-secret&scope=https://graph.microsoft.com/.default" \
  "$base/contoso/oauth2/v2.0/token" | json '["access_token"]')
auth="Authorization: Bearer $token"
drive=$(curl -sf -H "$auth" "$base/v1.0/sites/contoso.sharepoint.com:/sites/partners:/drive" | json '["id"]')

head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/file"
total=$(stat -c %s "$work/file")
split -b "$frag" -d -a 4 "$work/file" "$work/frag."

url=$(curl -sf -X POST -H "$auth" -H 'Content-Type: application/json' \
  -d '{"item":{"@microsoft.graph.conflictBehavior":"replace"}}' \
  "$base/v1.0/drives/$drive/root:/bench.bin:/createUploadSession" | json '["uploadUrl"]')
start=$(date +%s.%N)
offset=0
for f in "$work"/frag.*; do
  len=$(stat -c %s "$f")
  curl -sf -o /dev/null -w '%{time_total}\n' -X PUT -T "$f" \
    -H "Content-Range: bytes $offset-$((offset + len - 1))/$total" "$url" >>"$work/times"
  offset=$((offset + len))
done
up_wall=$(python3 -c "import time; print(time.time() - $start)")
up=$(python3 -c "print(sum(float(x) for x in open('$work/times')))")

location=$(curl -sf -o /dev/null -w '%{redirect_url}' -H "$auth" "$base/v1.0/drives/$drive/root:/bench.bin:/content")
start=$(date +%s.%N)
curl -sf -o /dev/null "$location"
down=$(python3 -c "import time; print(time.time() - $start)")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$sim_pid/status")

python3 - "$total" "$up" "$down" "$rss" "$up_wall" <<'PY'
import sys
total, up, down, rss, up_wall = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
mb = total / 1e6
print(f"size: {total / 2**20:.0f} MiB in 10 MiB fragments")
print(f"upload:   {mb / up:7.0f} MB/s ({up:.2f} s in the fragment requests; {mb / up_wall:.0f} MB/s counting one curl process per fragment)")
print(f"download: {mb / down:7.0f} MB/s ({down:.2f} s)")
print(f"simulator peak RSS: {rss / 1024:.0f} MiB")
PY
