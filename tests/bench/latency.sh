#!/usr/bin/env bash
# Benchmark: spgate on a SharePoint mount as partners see it, with the simulator far away
# (`spgate sim --profile PROFILE`: lan 0 ms/unlimited, realistic 80 ms/40 MB/s per connection,
# far 200 ms/10 MB/s). Over SFTP (OpenSSH sftp; paramiko where the close must be timed alone)
# and FTP (ftplib, curl):
#   - 200 files of 10 KiB in one session: time to the last acknowledgement, time until the
#     last one is in SharePoint, Graph requests;
#   - a BIG_MIB put (default 256): time writing, time the client's close waits, time until it
#     is in SharePoint, Graph requests; with upload_commit "queued" (/sp) and "close:10s"
#     (/sp10);
#   - a BIG_MIB get: MB/s (and a 256 MiB get over SFTP when BIG_MIB is another size);
#   - `ls -l` of a folder of 1,000 files, first listing: time and Graph requests;
#   - spgate's peak RSS.
#   usage: [UPLOAD_COMMIT=queued|close] tests/bench/latency.sh [PROFILE [BIG_MIB]]
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

cat >"$work/spgate.toml" <<TOML
[state]
dir = "$work/state"
[sftp]
listen = "127.0.0.1:0"
$(ftp_toml)
$(sim_connection_toml)
[[users]]
name = "bench"
password_hash = "$(printf bench | "$bin" passwd)"
authorized_keys = ["$(cat "$work/id.pub")"]
$(bench_mounts_toml)
$(sp_mount_toml /sp10 close:10s)
TOML
start_serve "$work/spgate.toml" sftp
sftp_port=$serve_port
wait_line "$work/serve.out" '^ftp listening on ' "$serve_pid"
ftp_port=$(sed -n "s/^ftp listening on .*://p" "$work/serve.out")
ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -i "$work/id" -o IdentitiesOnly=yes -P "$sftp_port")
sftp_batch() { sftp "${ssh_opts[@]}" -b - bench@127.0.0.1 >/dev/null; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "profile $profile, big file $big_mib MiB, /sp upload_commit ${UPLOAD_COMMIT:-queued}"
token=$(curl -sf "$sim/contoso/oauth2/v2.0/token" -d grant_type=client_credentials \
  -d client_id=spgate-demo -d client_secret=demo-secret \
  -d scope=https://graph.microsoft.com/.default | json '["access_token"]')
drive=$(curl -sf -H "Authorization: Bearer $token" \
  "$sim/v1.0/sites/contoso.sharepoint.com:/sites/partners:/drive" | json '["id"]')
# landed T0 FOLDER COUNT: waits until the library folder holds COUNT items (COUNT 0: until the
# file FOLDER exists), prints the seconds since T0 (asked of the simulator's Graph API every
# 50 ms: those requests count as list or get_item in the figures that follow).
landed() {
  python3 - "$sim" "$drive" "$token" "$1" "$2" "$3" <<'PY'
import json, sys, time, urllib.request
sim, drive, token, t0, folder, want = sys.argv[1:7]
item = f"{sim}/v1.0/drives/{drive}/root:/{folder}"
url = item if want == "0" else f"{item}:/children?$top=1000&$select=name,size"
while True:
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    try:
        answer = json.load(urllib.request.urlopen(req))
        got = len(answer["value"]) if want != "0" else 1
    except Exception:
        got = 0
    if got >= max(int(want), 1):
        break
    time.sleep(0.05)
print(f"{time.time() - float(t0):.2f}")
PY
}
# Folders first (not measured).
sftp_batch <<<"mkdir /sp/small
mkdir /sp/ftp
mkdir /sp/many"
sim_requests >/dev/null

# 200 small files over SFTP, one batch (cd and ls first, as a client does).
t0=$(now)
{ echo "cd /sp/small"; echo "ls"; for f in "$work"/small/*; do echo "put $f"; done; } | sftp_batch
t1=$(now)
t2=$(landed "$t0" small 200)
echo "sftp 200 x 10 KiB put: acknowledged after $(elapsed "$t0" "$t1") s, all in SharePoint after $t2 s, Graph requests $(sim_requests_by_kind)"

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
t2=$(landed "$t0" ftp 200)
echo "ftp  200 x 10 KiB put: acknowledged after $(elapsed "$t0" "$t1") s, all in SharePoint after $t2 s, Graph requests $(sim_requests_by_kind)"

# The big put with paramiko: writing and the close timed apart; then with close:10s.
for mount in sp sp10; do
t0=$(now)
python3 - "$sftp_port" "$work/id" "$work/big" "$mount" <<'PY'
import sys, time, paramiko
port, key, path, mount = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
t = paramiko.Transport(("127.0.0.1", port))
t.connect(username="bench", pkey=paramiko.Ed25519Key.from_private_key_file(key))
s = paramiko.SFTPClient.from_transport(t)
f = s.open(f"/{mount}/big{mount}", "wb")
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
size = s.stat(f"/{mount}/big{mount}").st_size
print(f"sftp big put to /{mount}: writing {t1 - t0:.2f} s, close waits {t2 - t1:.2f} s, size {size}")
t.close()
PY
echo "  in SharePoint after $(landed "$t0" "big$mount" 0) s, Graph requests $(sim_requests_by_kind)"
done

# The big get; then the same session's setup alone (connect, log in, cd), to tell the
# transfer's own rate.
t0=$(now)
sftp_batch <<<"get /sp/bigsp $work/out/big"
t1=$(now)
cmp -s "$work/big" "$work/out/big" || { echo "downloaded content differs"; exit 1; }
sftp_batch <<<"cd /sp"
t2=$(now)
python3 -c "print(f'sftp big get: {$big_mib * 1.048576 / ($t1 - $t0):.1f} MB/s ({$t1 - $t0:.2f} s); \
{$big_mib * 1.048576 / ($t1 - $t0 - ($t2 - $t1)):.1f} MB/s without the session setup ({$t2 - $t1:.2f} s)')"
echo "  Graph requests $(sim_requests_by_kind)"

# Issue 13's 256 MiB get, when the big file is another size: its first 256 MiB, put (queued) and
# fetched over SFTP once in SharePoint.
if [ "$big_mib" != 256 ]; then
  head -c $((256 * 1024 * 1024)) "$work/big" >"$work/mid"
  t0=$(now)
  sftp_batch <<<"put $work/mid /sp/mid"
  landed "$t0" mid 0 >/dev/null
  sim_requests >/dev/null
  t0=$(now)
  sftp_batch <<<"get /sp/mid $work/out/mid"
  t1=$(now)
  cmp -s "$work/mid" "$work/out/mid" || { echo "downloaded content differs"; exit 1; }
  python3 -c "print(f'sftp 256 MiB get: {256 * 1.048576 / ($t1 - $t0):.1f} MB/s ({$t1 - $t0:.2f} s)')"
  echo "  Graph requests $(sim_requests_by_kind)"
fi

# The big put and get over FTP with curl.
t0=$(now)
curl -sS -T "$work/big" "ftp://bench:bench@127.0.0.1:$ftp_port/sp/ftp/big"
t1=$(now)
echo "ftp  big put: acknowledged after $(elapsed "$t0" "$t1") s, in SharePoint after $(landed "$t0" ftp/big 0) s, Graph requests $(sim_requests_by_kind)"
t0=$(now)
curl -sS -o "$work/out/ftpbig" "ftp://bench:bench@127.0.0.1:$ftp_port/sp/ftp/big"
t1=$(now)
cmp -s "$work/big" "$work/out/ftpbig" || { echo "FTP download differs"; exit 1; }
python3 -c "print(f'ftp  big get: {$big_mib * 1.048576 / ($t1 - $t0):.1f} MB/s')"
sim_requests >/dev/null

# 1,000 files straight into the simulator (32 at a time), then the first `ls -l`.
seq -w 1 1000 | xargs -P 32 -I{} curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" \
  --data-binary "file {}" "$sim/v1.0/drives/$drive/root:/many/m{}.txt:/content"
sim_requests >/dev/null
t0=$(now)
sftp_batch <<<"ls -l /sp/many"
t1=$(now)
echo "sftp ls -l of 1,000 files: $(elapsed "$t0" "$t1") s, Graph requests $(sim_requests_by_kind)"
echo "spgate peak RSS $(peak_rss_mib "$serve_pid") MiB"
