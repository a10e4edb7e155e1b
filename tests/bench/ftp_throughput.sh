#!/usr/bin/env bash
# Benchmark: curl put (STOR) and get (RETR) of one file (default 256 MiB) over FTP in passive
# mode on loopback against
#   (a) a reference FTP server on a local folder: pyftpdlib (installed with pip into the user's
#       python3 when missing),
#   (b) spgate on a local mount,
#   (c) spgate on a SharePoint mount through `spgate sim`.
# Prints MB/s, the ratio to (a) with its target ((b) >= 0.8; (c) put >= 0.8 with the default
# upload_commit "queued", get >= 0.5), the Graph requests
# each (c) transfer made (from /_sim/stats), and spgate's peak RSS.
#   usage: tests/bench/ftp_throughput.sh [SIZE_MIB [ROUNDS]]
# Each figure is the median of ROUNDS (default 3) rounds of (a), (b), (c) in turn.
# Needs curl and python3 with pip. Environment: SPGATE_BENCH_TMP, SPGATE_BENCH_DATA (see
# common.sh). Not a test: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-256}
rounds=${2:-3}
. tests/bench/common.sh

python3 -c 'import pyftpdlib' 2>/dev/null || python3 -m pip install --user --quiet pyftpdlib

head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/file"
mkdir -p "$work/local" "$work/ref" "$work/state" "$work/out"
start_sim

# (a): pyftpdlib, user bench/bench, writable folder $work/ref, default buffers.
python3 - "$work/ref" >"$work/ref.out" 2>"$work/ref.err" <<'PY' &
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
import pyftpdlib
users = DummyAuthorizer()
users.add_user("bench", "bench", sys.argv[1], perm="elradfmwMT")
FTPHandler.authorizer = users
server = FTPServer(("127.0.0.1", 0), FTPHandler)
print(f"ftp listening on 127.0.0.1:{server.address[1]} pyftpdlib {pyftpdlib.__ver__}", flush=True)
server.serve_forever()
PY
pids+=($!)
wait_line "$work/ref.out" '^ftp listening on ' "$!"
ref_port=$(sed -n 's/^ftp listening on [^:]*:\([0-9]*\) .*/\1/p' "$work/ref.out")
ref_name=$(sed -n 's/^ftp listening on [^ ]* //p' "$work/ref.out")

cat >"$work/spgate.toml" <<TOML
[state]
dir = "$work/state"
$(ftp_toml)
$(sim_connection_toml)
[[users]]
name = "bench"
password_hash = "$(printf bench | "$bin" passwd)"
$(bench_mounts_toml)
TOML
start_serve "$work/spgate.toml" ftp
spgate_port=$serve_port

# run LABEL PORT PATH: put then get; prints "LABEL put_s get_s put_requests get_requests".
run() {
  local url="ftp://bench:bench@127.0.0.1:$2/$3" t0 t1 t2 put_req get_req
  sim_requests >/dev/null
  t0=$(now)
  curl -sS -T "$work/file" "$url"
  t1=$(now)
  queue_settle "$work/spgate.toml"
  put_req=$(sim_requests)
  curl -sS -o "$work/out/$1" "$url"
  t2=$(now)
  get_req=$(sim_requests)
  cmp -s "$work/file" "$work/out/$1" || { echo "$1: downloaded content differs" >&2; exit 1; }
  rm -f "$work/out/$1"
  # Every round's put creates the file anew (replacing one costs the reference more).
  curl -sS -o /dev/null -Q "DELE $3" "ftp://bench:bench@127.0.0.1:$2/"
  python3 -c "print('$1', $t1 - $t0, $t2 - $t1, $put_req, $get_req)"
}

# Rounds of (a), (b), (c) in turn, so that the machine's noise falls on all three alike; the
# figures are each transfer's median over the rounds.
results=()
for ((round = 0; round < rounds; round++)); do
  results+=("$(run a "$ref_port" file)")
  results+=("$(run b "$spgate_port" local/file)")
  results+=("$(run c "$spgate_port" sp/file)")
done
rss=$(peak_rss_mib "$serve_pid")

python3 - "$size_mib" "$ref_name" "$rss" "${results[@]}" <<'PY'
import statistics, sys
size_mib, ref_name, rss = int(sys.argv[1]), sys.argv[2], sys.argv[3]
runs = {}
for r in sys.argv[4:]:
    key, put, get, put_req, get_req = r.split()
    runs.setdefault(key, []).append((float(put), float(get), put_req, get_req))
rows = {key: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
              rs[-1][2], rs[-1][3]) for key, rs in runs.items()}
rounds = len(runs["a"])
mb = size_mib * 1048576 / 1e6
names = {"a": f"(a) {ref_name}, local folder", "b": "(b) spgate, local mount",
         "c": "(c) spgate, SharePoint (sim)"}
targets = {"b": (0.8, 0.8), "c": (0.8, 0.5)}  # (put, get)
base = rows["a"]
print(f"{size_mib} MiB, curl, FTP passive mode, loopback; medians of {rounds} rounds")
for key in "abc":
    put, get = rows[key][:2]
    line = f"{names[key]:34} put {mb / put:7.0f} MB/s   get {mb / get:7.0f} MB/s"
    if key in targets:
        rp, rg, (tp, tg) = base[0] / put, base[1] / get, targets[key]
        ok = "ok" if rp >= tp and rg >= tg else "BELOW TARGET"
        line += f"   ratio put {rp:4.2f} get {rg:4.2f} (targets >= {tp}/{tg}: {ok})"
    print(line)
print(f"Graph requests for (c): put {rows['c'][2]}, get {rows['c'][3]}")
print(f"spgate peak RSS: {rss} MiB")
PY
