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
# SPGATE_BENCH_TMP=/dev/shm puts every folder (sshd's, the local mount, spgate's spool, the
# simulator's content) on tmpfs, so that disk writeback does not blur the comparison.
. tests/bench/common.sh

ssh-keygen -q -t ed25519 -N "" -f "$work/id"
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/file"
mkdir -p "$work/local" "$work/sshd-root" "$work/state" "$work/out"
ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -i "$work/id" -o IdentitiesOnly=yes -c aes128-gcm@openssh.com)

# (c)'s simulator.
start_sim

cat >"$work/spgate.toml" <<TOML
[state]
dir = "$work/state"
[sftp]
listen = "127.0.0.1:0"
$(sim_connection_toml)
[[users]]
name = "bench"
authorized_keys = ["$(cat "$work/id.pub")"]
$(bench_mounts_toml)
TOML
start_serve "$work/spgate.toml" sftp
spgate_pid=$serve_pid spgate_port=$serve_port

sshd_port=""
if [ -x /usr/sbin/sshd ]; then
  ssh-keygen -q -t ed25519 -N "" -f "$work/hostkey"
  cp "$work/id.pub" "$work/authorized_keys"; chmod 600 "$work/authorized_keys"
  sshd_port=$(free_port)
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
  t0=$(now)
  sftp "${ssh_opts[@]}" -P "$2" -b - "$3@127.0.0.1" >/dev/null <<<"put $work/file $4"
  t1=$(now)
  [ "$1" = a ] || queue_settle "$work/spgate.toml"
  sftp "${ssh_opts[@]}" -P "$2" -b - "$3@127.0.0.1" >/dev/null <<<"get $4 $work/out/$1"
  t2=$(now)
  cmp -s "$work/file" "$work/out/$1" || { echo "$1: downloaded content differs"; exit 1; }
  python3 -c "print('$1', $t1 - $t0, $t2 - $t1)"
}

results=()
[ -n "$sshd_port" ] && results+=("$(run a "$sshd_port" "$(whoami)" "$work/sshd-root/file")")
results+=("$(run b "$spgate_port" bench /local/file)")
sim_requests >/dev/null
t0=$(now)
sftp "${ssh_opts[@]}" -P "$spgate_port" -b - bench@127.0.0.1 >/dev/null <<<"put $work/file /sp/file"
t1=$(now)
queue_settle "$work/spgate.toml"
put_requests=$(sim_requests)
sftp "${ssh_opts[@]}" -P "$spgate_port" -b - bench@127.0.0.1 >/dev/null <<<"get /sp/file $work/out/c"
t2=$(now)
get_requests=$(sim_requests)
cmp -s "$work/file" "$work/out/c" || { echo "c: downloaded content differs"; exit 1; }
results+=("$(python3 -c "print('c', $t1 - $t0, $t2 - $t1)")")
rss=$(peak_rss_mib "$spgate_pid")

python3 - "$size_mib" "$put_requests" "$get_requests" "$rss" "${results[@]}" <<'PY'
import sys
size_mib, put_req, get_req, rss = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
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
print(f"spgate peak RSS: {rss} MiB")
PY
