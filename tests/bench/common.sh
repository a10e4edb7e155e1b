# Shared by the benchmark scripts: sourced (not run) after `cd` to the repository root. Builds
# the release binary (unless SPGATE_BENCH_BIN names one to use) and sets
#   bin   the spgate binary;
#   work  a temporary folder, removed at exit, under SPGATE_BENCH_TMP (/dev/shm keeps the disk
#         out of the figures), else TMPDIR or /tmp;
#   pids  the processes killed at exit (append with `pids+=($!)`).
# Environment: SPGATE_BENCH_TMP (above), SPGATE_BENCH_DATA (the simulator's content folder;
# default $work/sim).
if [ -n "${SPGATE_BENCH_BIN:-}" ]; then
  bin=$SPGATE_BENCH_BIN
else
  cargo build --release --quiet
  bin=$PWD/target/release/spgate
fi
work=$(mktemp -d -p "${SPGATE_BENCH_TMP:-${TMPDIR:-/tmp}}")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# wait_line FILE PATTERN PID: waits until FILE has a line matching PATTERN; fails if PID ends.
wait_line() {
  until grep -q "$2" "$1" 2>/dev/null; do kill -0 "$3" || { cat "$1"; exit 1; }; sleep 0.05; done
}
# json EXPR: prints EXPR (e.g. '["requests"]') of the JSON document on stdin.
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# now: the time in seconds, with nanoseconds.
now() { date +%s.%N; }
# free_port: a TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_sim [ARGS...]: starts `spgate sim` on a free port with ARGS (e.g. `--profile far`); sets
# sim (its URL).
start_sim() {
  "$bin" sim --listen 127.0.0.1:0 --data "${SPGATE_BENCH_DATA:-$work/sim}" "$@" \
    >"$work/sim.out" 2>"$work/sim.err" &
  pids+=($!)
  wait_line "$work/sim.out" '^listening on ' "$!"
  sim=$(sed -n 's/^listening on //p' "$work/sim.out")
}

# sim_requests: the Graph requests the simulator counted since the last call; resets the count.
sim_requests() {
  curl -sf "$sim/_sim/stats" | json '["requests"]'
  curl -sf -X POST "$sim/_sim/stats/reset" >/dev/null
}

# queue_settle CONFIG: waits until the gateway of CONFIG has no queued upload left on its way
# (upload_commit = "queued": a put is acknowledged before SharePoint has the file).
queue_settle() {
  until "$bin" queue list --config "$1" | grep -q "queue is empty"; do sleep 0.05; done
}

# sim_requests_by_kind: sim_requests with the kinds that are not zero
# ("203 (simple_upload 200, list 2, get_item 1)").
sim_requests_by_kind() {
  curl -sf "$sim/_sim/stats" | python3 -c 'import json, sys
s = json.load(sys.stdin)
kinds = ", ".join(f"{k} {n}" for k, n in s["by_kind"].items() if n)
total = s["requests"]
print(f"{total} ({kinds})")'
  curl -sf -X POST "$sim/_sim/stats/reset" >/dev/null
}

# start_serve CONFIG PROTOCOL: starts `spgate serve --config CONFIG` and waits until it announces
# PROTOCOL's listener; sets serve_pid and serve_port.
start_serve() {
  "$bin" serve --config "$1" >"$work/serve.out" 2>"$work/serve.err" &
  serve_pid=$!
  pids+=($serve_pid)
  wait_line "$work/serve.out" "^$2 listening on " "$serve_pid"
  serve_port=$(sed -n "s/^$2 listening on .*://p" "$work/serve.out")
}

# peak_rss_mib PID: the peak resident memory (VmHWM) of a running process, in MiB.
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# sim_connection_toml: the [[connections]] table "sp" for the simulator at $sim, plus the
# lines in SPGATE_BENCH_CONNECTION (e.g. "download_block_mib = 16") to try other limits.
sim_connection_toml() {
  cat <<TOML
[[connections]]
name = "sp"
tenant = "contoso"
client_id = "spgate-demo"
client_secret = "demo-secret"
site = "https://contoso.sharepoint.com/sites/partners"
authority = "$sim"
graph_url = "$sim"
${SPGATE_BENCH_CONNECTION:-}
TOML
}

# ftp_toml: an [ftp] table listening on port 0, with a passive port range of its own
# (libunftp binds the range itself).
ftp_toml() {
  local passive=$((40000 + RANDOM % 20000))
  printf '[ftp]\nlisten = "127.0.0.1:0"\npassive_ports = "%s-%s"\n' "$passive" "$((passive + 100))"
}

# sp_mount_toml PATH COMMIT: a mount of the library root of "sp" at PATH, all permissions.
sp_mount_toml() {
  printf '[[users.mounts]]\npath = "%s"\nconnection = "sp"\nremote = "/"\npermissions = ["*"]\nupload_commit = "%s"\n' "$1" "$2"
}

# bench_mounts_toml: the bench user's mounts: /sp (the library root of "sp", upload_commit
# $UPLOAD_COMMIT, default "queued") and /local ($work/local), all permissions.
bench_mounts_toml() {
  sp_mount_toml /sp "${UPLOAD_COMMIT:-queued}"
  cat <<TOML
[[users.mounts]]
path = "/local"
local = "$work/local"
permissions = ["*"]
TOML
}

# make_files DIR COUNT MAX_KIB: COUNT files of 1 KiB to MAX_KIB of random bytes under DIR, in
# 10 folders x 10 subfolders (3 levels), the same names and sizes at every call.
make_files() {
  python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
root, total, max_kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(7)
for i in range(total):
    d = os.path.join(root, f"dir{i % 10:02}", f"sub{(i // 10) % 10:02}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i:05}.bin"), "wb") as f:
        f.write(os.urandom(random.randint(1024, max_kib * 1024)))
PY
}
