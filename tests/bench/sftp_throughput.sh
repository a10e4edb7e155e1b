#!/usr/bin/env bash
# Benchmark: OpenSSH `sftp` put and get of one file (default 256 MiB) against
#   (a) OpenSSH's own sshd + sftp-server on a local folder,
#   (b) spgate on a local mount,
#   (c) spgate on a SharePoint mount through `spgate sim`,
# all with aes128-gcm@openssh.com over loopback. Prints MB/s, the ratio to (a), the Graph
# requests each (c) transfer made (from /_sim/stats), and spgate's peak RSS.
#   usage: tests/bench/sftp_throughput.sh [SIZE_MIB]
# Needs openssh-server (sshd) for (a); (a) is skipped without it. Figures depend on the machine.
# Environment: SPGATE_BENCH_TMP (see below), SPGATE_BENCH_DATA (the simulator's content folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-256}
cargo build --release --quiet
bin=$PWD/target/release/spgate
# SPGATE_BENCH_TMP=/dev/shm puts every folder (sshd's, the local mount, spgate's spool, the
# simulator's content) on tmpfs, so that disk writeback does not blur the comparison.
work=$(mktemp -d -p "${SPGATE_BENCH_TMP:-${TMPDIR:-/tmp}}")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_line() { # file pattern pid
  until grep -q "$2" "$1" 2>/dev/null; do kill -0 "$3" || { cat "$1"; exit 1; }; sleep 0.05; done
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

ssh-keygen -q -t ed25519 -N "" -f "$work/id"
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/file"
mkdir -p "$work/local" "$work/sshd-root" "$work/state" "$work/out"
ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -i "$work/id" -o IdentitiesOnly=yes -c aes128-gcm@openssh.com)

# (c)'s simulator, with content on tmpfs so the disk is not what is measured.
"$bin" sim --listen 127.0.0.1:0 --data "${SPGATE_BENCH_DATA:-$work/sim}" >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!); wait_line "$work/sim.out" '^listening on ' "${pids[-1]}"
sim=$(sed -n 's/^listening on //p' "$work/sim.out")

cat >"$work/spgate.toml" <<TOML
[state]
dir = "$work/state"
[sftp]
listen = "127.0.0.1:0"
[[connections]]
name = "sp"
tenant = "contoso"
client_id = "spgate-demo"
client_secret = "demo-secret"
site = "https://contoso.sharepoint.com/sites/partners"
authority = "$sim"
graph_url = "$sim"
[[users]]
name = "bench"
authorized_keys = ["$(cat "$work/id.pub")"]
[[users.mounts]]
path = "/sp"
connection = "sp"
remote = "/"
permissions = ["*"]
[[users.mounts]]
path = "/local"
local = "$work/local"
permissions = ["*"]
TOML
"$bin" serve --config "$work/spgate.toml" >"$work/serve.out" 2>"$work/serve.err" &
spgate_pid=$!; pids+=($spgate_pid); wait_line "$work/serve.out" '^sftp listening on ' "$spgate_pid"
spgate_port=$(sed -n 's/^sftp listening on .*://p' "$work/serve.out")

sshd_port=""
if [ -x /usr/sbin/sshd ]; then
  ssh-keygen -q -t ed25519 -N "" -f "$work/hostkey"
  cp "$work/id.pub" "$work/authorized_keys"; chmod 600 "$work/authorized_keys"
  sshd_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p /run/sshd
  cat >"$work/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $sshd_port
HostKey $work/hostkey
AuthorizedKeysFile $work/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
PasswordAuthentication no
Subsystem sftp /usr/lib/openssh/sftp-server
PidFile none
CFG
  /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.err" &
  pids+=($!)
  until ssh "${ssh_opts[@]}" -p "$sshd_port" "$(whoami)@127.0.0.1" true 2>/dev/null; do sleep 0.1; done
fi

run() { # label port user remote-path
  local t0 t1 t2
  t0=$(date +%s.%N)
  sftp "${ssh_opts[@]}" -P "$2" -b - "$3@127.0.0.1" >/dev/null <<<"put $work/file $4"
  t1=$(date +%s.%N)
  sftp "${ssh_opts[@]}" -P "$2" -b - "$3@127.0.0.1" >/dev/null <<<"get $4 $work/out/$1"
  t2=$(date +%s.%N)
  cmp -s "$work/file" "$work/out/$1" || { echo "$1: downloaded content differs"; exit 1; }
  python3 -c "print('$1', $t1 - $t0, $t2 - $t1)"
}

results=()
[ -n "$sshd_port" ] && results+=("$(run a "$sshd_port" "$(whoami)" "$work/sshd-root/file")")
results+=("$(run b "$spgate_port" bench /local/file)")
curl -sf -X POST "$sim/_sim/stats/reset" >/dev/null
t0=$(date +%s.%N)
sftp "${ssh_opts[@]}" -P "$spgate_port" -b - bench@127.0.0.1 >/dev/null <<<"put $work/file /sp/file"
t1=$(date +%s.%N)
put_requests=$(curl -sf "$sim/_sim/stats" | json '["requests"]')
curl -sf -X POST "$sim/_sim/stats/reset" >/dev/null
sftp "${ssh_opts[@]}" -P "$spgate_port" -b - bench@127.0.0.1 >/dev/null <<<"get /sp/file $work/out/c"
t2=$(date +%s.%N)
get_requests=$(curl -sf "$sim/_sim/stats" | json '["requests"]')
cmp -s "$work/file" "$work/out/c" || { echo "c: downloaded content differs"; exit 1; }
results+=("$(python3 -c "print('c', $t1 - $t0, $t2 - $t1)")")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$spgate_pid/status")

python3 - "$size_mib" "$put_requests" "$get_requests" "$rss" "${results[@]}" <<'PY'
import sys
size_mib, put_req, get_req, rss = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
rows = {r.split()[0]: (float(r.split()[1]), float(r.split()[2])) for r in sys.argv[5:]}
mb = size_mib * 1048576 / 1e6
names = {"a": "(a) OpenSSH sshd, local folder", "b": "(b) spgate, local mount", "c": "(c) spgate, SharePoint (sim)"}
base = rows.get("a")
print(f"{size_mib} MiB, OpenSSH sftp, aes128-gcm, loopback")
for key in "abc":
    if key not in rows:
        print(f"{names[key]:34} skipped (no sshd)")
        continue
    put, get = rows[key]
    line = f"{names[key]:34} put {mb / put:7.0f} MB/s   get {mb / get:7.0f} MB/s"
    if base:
        line += f"   ratio put {base[0] / put:4.2f} get {base[1] / get:4.2f}"
    print(line)
print(f"Graph requests for (c): put {put_req}, get {get_req}")
print(f"spgate peak RSS: {rss / 1024:.0f} MiB")
PY
