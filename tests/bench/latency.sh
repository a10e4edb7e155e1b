#!/usr/bin/env bash
# Benchmark: spgate on a SharePoint mount as partners see it, with the simulator far away
# (`spgate sim --profile PROFILE`: lan 0 ms/unlimited, realistic 80 ms/40 MB/s per connection,
# far 200 ms/10 MB/s). Over SFTP (OpenSSH sftp; paramiko where the close must be timed alone)
# and FTP (ftplib, curl):
#   - 200 files of 10 KiB in one session: time to the last acknowledgement, Graph requests;
#   - a BIG_MIB put (default 256): time writing, time the client's close waits, Graph requests;
#   - a BIG_MIB get: MB/s;
#   - `ls -l` of a folder of 1,000 files, first listing: time and Graph requests;
#   - spgate's peak RSS.
#   usage: tests/bench/latency.sh [PROFILE [BIG_MIB]]
# Needs curl, OpenSSH sftp, python3 with paramiko. Not a test: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${1:-realistic}
big_mib=${2:-256}
. tests/bench/common.sh
python3 -c 'import paramiko' 2>/dev/null || python3 -m pip install --quiet paramiko

ssh-keygen -q -t ed25519 -N "" -f "$work/id"
mkdir -p "$work/local" "$work/state" "$work/small" "$work/out"
for i in $(seq -w 1 200); do head -c 10240 /dev/urandom >"$work/small/s$i.bin"; done
head -c $((big_mib * 1024 * 1024)) /dev/urandom >"$work/big"
start_sim --profile "$profile"

passive=$((40000 + RANDOM % 20000))
cat >"$work/spgate.toml" <<TOML
[state]
dir = "$work/state"
[sftp]
listen = "127.0.0.1:0"
[ftp]
listen = "127.0.0.1:0"
passive_ports = "$passive-$((passive + 100))"
$(sim_connection_toml)
[[users]]
name = "bench"
password_hash = "$(printf bench | "$bin" passwd)"
authorized_keys = ["$(cat "$work/id.pub")"]
$(bench_mounts_toml)
TOML
start_serve "$work/spgate.toml" sftp
sftp_port=$serve_port
wait_line "$work/serve.out" '^ftp listening on ' "$serve_pid"
ftp_port=$(sed -n "s/^ftp listening on .*://p" "$work/serve.out")
ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -i "$work/id" -o IdentitiesOnly=yes -P "$sftp_port")
sftp_batch() { sftp "${ssh_opts[@]}" -b - bench@127.0.0.1 >/dev/null; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "profile $profile, big file $big_mib MiB"
# Folders first (not measured).
sftp_batch <<<"mkdir /sp/small
mkdir /sp/ftp
mkdir /sp/many"
sim_requests >/dev/null

# 200 small files over SFTP, one batch (cd and ls first, as a client does).
t0=$(now)
{ echo "cd /sp/small"; echo "ls"; for f in "$work"/small/*; do echo "put $f"; done; } | sftp_batch
t1=$(now)
echo "sftp 200 x 10 KiB put: acknowledged after $(elapsed "$t0" "$t1") s, Graph requests $(sim_requests)"

# The same over FTP (one ftplib session).
t0=$(now)
python3 - "$ftp_port" "$work/small" <<'PY'
import ftplib, os, sys
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=120)
ftp.login("bench", "bench")
ftp.cwd("/sp/ftp")
for name in sorted(os.listdir(sys.argv[2])):
    with open(os.path.join(sys.argv[2], name), "rb") as f:
        ftp.storbinary("STOR " + name, f)
ftp.quit()
PY
t1=$(now)
echo "ftp  200 x 10 KiB put: acknowledged after $(elapsed "$t0" "$t1") s, Graph requests $(sim_requests)"

# The big put with paramiko: writing and the close timed apart.
python3 - "$sftp_port" "$work/id" "$work/big" <<'PY'
import sys, time, paramiko
port, key, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t = paramiko.Transport(("127.0.0.1", port))
t.connect(username="bench", pkey=paramiko.Ed25519Key.from_private_key_file(key))
s = paramiko.SFTPClient.from_transport(t)
f = s.open("/sp/big", "wb")
f.set_pipelined(True)
t0 = time.monotonic()
with open(path, "rb") as src:
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            break
        f.write(chunk)
f.flush()
t1 = time.monotonic()
f.close()
t2 = time.monotonic()
size = s.stat("/sp/big").st_size
print(f"sftp big put: writing {t1 - t0:.2f} s, close waits {t2 - t1:.2f} s, size {size}")
t.close()
PY
echo "  Graph requests $(sim_requests)"

# The big get.
t0=$(now)
sftp_batch <<<"get /sp/big $work/out/big"
t1=$(now)
cmp -s "$work/big" "$work/out/big" || { echo "downloaded content differs"; exit 1; }
python3 -c "print(f'sftp big get: {$big_mib * 1.048576 / ($t1 - $t0):.1f} MB/s ({$t1 - $t0:.2f} s)')"
echo "  Graph requests $(sim_requests)"

# The big put and get over FTP with curl.
t0=$(now)
curl -sS -T "$work/big" "ftp://bench:bench@127.0.0.1:$ftp_port/sp/ftp/big"
t1=$(now)
echo "ftp  big put: $(elapsed "$t0" "$t1") s in all, Graph requests $(sim_requests)"
t0=$(now)
curl -sS -o "$work/out/ftpbig" "ftp://bench:bench@127.0.0.1:$ftp_port/sp/ftp/big"
t1=$(now)
cmp -s "$work/big" "$work/out/ftpbig" || { echo "FTP download differs"; exit 1; }
python3 -c "print(f'ftp  big get: {$big_mib * 1.048576 / ($t1 - $t0):.1f} MB/s')"
sim_requests >/dev/null

# 1,000 files straight into the simulator (32 at a time), then the first `ls -l`.
token=$(curl -sf "$sim/contoso/oauth2/v2.0/token" -d grant_type=client_credentials \
  -d client_id=spgate-demo -d client_secret=demo-secret \
  -d scope=https://graph.microsoft.com/.default | json '["access_token"]')
drive=$(curl -sf -H "Authorization: Bearer $token" \
  "$sim/v1.0/sites/contoso.sharepoint.com:/sites/partners:/drive" | json '["id"]')
seq -w 1 1000 | xargs -P 32 -I{} curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" \
  --data-binary "file {}" "$sim/v1.0/drives/$drive/root:/many/m{}.txt:/content"
sim_requests >/dev/null
t0=$(now)
sftp_batch <<<"ls -l /sp/many"
t1=$(now)
echo "sftp ls -l of 1,000 files: $(elapsed "$t0" "$t1") s, Graph requests $(sim_requests)"
echo "spgate peak RSS $(peak_rss_mib "$serve_pid") MiB"
