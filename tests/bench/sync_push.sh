#!/usr/bin/env bash
# Benchmark: the sync worker's first push of 5,000 small files (1-64 KiB, nested 3 levels), then
# of one large file (default 1 GiB), then a no-change re-run, against `spgate sim`. Prints wall
# time, Graph requests by kind (from /_sim/stats) and files/s for each phase.
#   usage: tests/bench/sync_push.sh [FILES] [BIG_MIB]
# Environment: SPGATE_BENCH_TMP, SPGATE_BENCH_DATA, SPGATE_BENCH_BIN (see common.sh; /dev/shm
# as SPGATE_BENCH_TMP keeps the disk out of the figures). Figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=${1:-5000}
big_mib=${2:-1024}
. tests/bench/common.sh
start_sim

# 5,000 files: 10 folders x 10 subfolders x 50 files (3 levels), sizes 1-64 KiB.
make_files "$work/local" "$files" 64

cat >"$work/spgate.toml" <<TOML
[state]
dir = "$work/state"
$(sim_connection_toml)
[[syncs]]
name = "bench"
local = "$work/local"
connection = "sp"
remote = "/Bench"
direction = "push"
TOML

phase() { # label
  curl -s -X POST "$sim/_sim/stats/reset" >/dev/null
  local start end
  start=$(date +%s.%N)
  "$bin" sync run bench --config "$work/spgate.toml" >"$work/run.out" 2>"$work/run.err" || {
    cat "$work/run.out" "$work/run.err"; exit 1; }
  end=$(date +%s.%N)
  curl -s "$sim/_sim/stats" >"$work/stats.json"
  python3 - "$1" "$end" "$start" "$(grep '^sync bench' "$work/run.out" | sed 's/;.*//')" "$work/stats.json" <<'PY'
import json, sys
label, secs, summary = sys.argv[1], float(sys.argv[2]) - float(sys.argv[3]), sys.argv[4]
s = json.load(open(sys.argv[5])); k = s["by_kind"]
up = [int(x.split()[0]) for x in summary.split(":")[-1].split(",") if "uploaded" in x][0]
rate = up / secs if up else 0
other = k["get_item"] + k["site"] + k["other"]
print(f"{label:<28} {secs:7.2f} s {rate:8.1f} files/s  requests {s['requests']:>6} "
      f"(token {k['token']}, simple_upload {k['simple_upload']}, create_session {k['create_session']}, "
      f"fragments {k['upload_fragment']}, mkdir {k['mkdir']}, list {k['list']}, delta {k['delta']}, other {other})")
PY
}

echo "sync push benchmark: $files small files, then a ${big_mib} MiB file, against spgate sim"
phase "first push, $files files"
head -c $((big_mib * 1024 * 1024)) /dev/urandom >"$work/local/big.bin"
phase "push of a ${big_mib} MiB file"
phase "no-change re-run"
