#!/usr/bin/env bash
# Benchmark: the state store's cost on the sync worker, SQLite against PostgreSQL. The same job
# (FILES small files, default 2,000, pushed once to set its baseline) then runs ROUNDS times
# with nothing to do (default 7), once with the SQLite store and once with a PostgreSQL store
# (a temporary server, Debian's postgresql package, started here on a Unix socket). Prints each
# store's no-change run times (min / median / max) and the median's difference.
#   usage: tests/bench/sync_store.sh [FILES] [ROUNDS]
# Environment: as common.sh. Figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=${1:-2000}
rounds=${2:-7}
. tests/bench/common.sh
start_sim

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL is not installed (Debian's postgresql package)"; exit 1; }
# PostgreSQL refuses to run as root: as root, its files belong to the postgres user.
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); chmod 755 "$work"; fi
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
  -o "-c listen_addresses= -c unix_socket_directories=$work/pg" start >/dev/null
trap '"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true; cleanup' EXIT
"${as_pg[@]}" "$pg_bin/psql" -h "$work/pg" -U postgres -q -c 'CREATE DATABASE spgate' >/dev/null

make_files "$work/local-sqlite" "$files" 8
# Each store's job has a folder of its own (a folder belongs to one cluster: its marker says so).
cp -a "$work/local-sqlite" "$work/local-postgres"

key=$("$bin" keygen)
config() { # NAME DATABASE_LINE
  cat >"$work/$1.toml" <<TOML
[state]
dir = "$work/state-$1"
$2
$(sim_connection_toml)
[[syncs]]
name = "bench-$1"
local = "$work/local-$1"
connection = "sp"
remote = "/Bench-$1"
direction = "push"
TOML
}
config sqlite ""
config postgres "database = \"postgres://postgres@localhost/spgate?host=$work/pg\"
secret_key = \"$key\""

run() { # NAME
  "$bin" sync run "bench-$1" --config "$work/$1.toml" >"$work/run.out" 2>"$work/run.err" || {
    cat "$work/run.out" "$work/run.err"; exit 1; }
}

echo "sync no-change runs, $files files, $rounds rounds, SQLite against PostgreSQL (local socket)"
for store in sqlite postgres; do
  run "$store"   # the first push: the baseline
  times=()
  for _ in $(seq "$rounds"); do
    start=$(now); run "$store"; end=$(now)
    times+=("$(python3 -c "print($end - $start)")")
  done
  echo "$store ${times[*]}" >>"$work/times"
done
python3 - "$work/times" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *t = line.split()
    t = sorted(float(x) for x in t)
    rows[name] = t
    print(f"{name:<9} min {t[0]*1000:7.0f} ms  median {statistics.median(t)*1000:7.0f} ms  max {t[-1]*1000:7.0f} ms")
d = statistics.median(rows["postgres"]) - statistics.median(rows["sqlite"])
print(f"PostgreSQL - SQLite (medians): {d*1000:+.0f} ms per no-change run")
PY
