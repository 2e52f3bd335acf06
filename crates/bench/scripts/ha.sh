#!/usr/bin/env bash
# Benchmarks for docs/PERFORMANCE.md, section "Several instances": issuance through one instance
# on SQLite, one on PostgreSQL, and three on PostgreSQL behind HAProxy (contrib/haproxy), three
# runs of 2,000 requests at concurrency 32 each. Server CPU is the sum over the mayfly-ca
# processes (clock ticks of 10 ms), measured around the whole mayfly-bench run; the database's
# own CPU is not included.
#
# Usage: crates/bench/scripts/ha.sh sqlite|postgres1|postgres3
# Needs: cargo build --release -p mayfly-server -p mayfly-bench -p mayfly-cli; PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust; database mayfly_bench is dropped and re-created); haproxy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
MAYFLY=${MAYFLY:-$BIN/mayfly}
W=${WORK:-/tmp/mayfly-ha-bench}; rm -rf $W; mkdir -p $W; cd $W
export MAYFLY_PATH=$W/mayfly
PORT=${PORT:-19443}
echo "ca pw" > pw.txt; echo "prov pw" > prov.txt
cpu() { local t=0; for p in "$@"; do set -- $(cut -d' ' -f14,15 /proc/$p/stat); t=$((t+$1+$2)); done; echo $t; }
bench() { $BIN/mayfly-bench sign --ca-url https://127.0.0.1:$PORT --root $MAYFLY_PATH/certs/root_ca.crt \
  --password-file prov.txt -n 2000 -c 32 --json; }
$MAYFLY ca init --name Bench --dns 127.0.0.1 --dns 127.0.0.2 --dns 127.0.0.3 --dns 127.0.0.4 \
  --address 127.0.0.1:$PORT --provisioner ops --password-file pw.txt --provisioner-password-file prov.txt >/dev/null
CFG=$MAYFLY_PATH/config/ca.json
mode=$1
case $mode in
sqlite)
  $BIN/mayfly-ca $CFG --password-file pw.txt >/dev/null 2>$W/err & PIDS=$!; sleep 2 ;;
postgres1|postgres3)
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS mayfly_bench" -c "CREATE DATABASE mayfly_bench" test
  python3 - "$CFG" <<'PY'
import json,sys
p=sys.argv[1]; c=json.load(open(p)); c["db"]={"type":"postgresql","dataSource":"postgres://postgres@127.0.0.1:5432/mayfly_bench"}
json.dump(c,open(p,"w"),indent=2)
PY
  if [ $mode = postgres1 ]; then
    $BIN/mayfly-ca $CFG --password-file pw.txt >/dev/null 2>$W/err & PIDS=$!; sleep 2
  else
    PIDS=""
    for i in 2 3 4; do
      python3 -c "import json,sys; c=json.load(open('$CFG')); c['address']='127.0.0.$i:$PORT'; json.dump(c,open('$W/ca-$i.json','w'))"
      $BIN/mayfly-ca $W/ca-$i.json --password-file pw.txt >/dev/null 2>$W/err-$i & PIDS="$PIDS $!"
    done
    sed -e "s|bind :9000|bind 127.0.0.1:$PORT|" -e "s|/etc/mayfly/certs/root_ca.crt|$MAYFLY_PATH/certs/root_ca.crt|" \
        -e "/server ca[123]/d" $ROOT/contrib/haproxy/haproxy.cfg > haproxy.cfg
    for i in 2 3 4; do echo "    server ca$i 127.0.0.$i:$PORT" >> haproxy.cfg; done
    sed -i 's/^    log stdout.*$//' haproxy.cfg
    haproxy -db -f haproxy.cfg >/dev/null 2>&1 & HAP=$!; sleep 4
  fi ;;
esac
for run in 1 2 3; do
  before=$(cpu $PIDS); out=$(bench); after=$(cpu $PIDS)
  echo "$mode run $run: $out server_cpu_ticks=$((after-before))"
done
kill $PIDS ${HAP:-} 2>/dev/null || true
wait 2>/dev/null || true
