#!/usr/bin/env bash
# Paired runs of `mayfly-bench sign` against two builds of mayfly-ca, the order swapped each
# pair; each run on a fresh `mayfly ca init` CA. Usage: paired-sign.sh DIR_A DIR_B PAIRS N C
set -euo pipefail
a=$1; b=$2; pairs=${3:-4}; n=${4:-10000}; c=${5:-32}
bench=${BENCH:-$b/mayfly-bench}
run() { # dir label
  local dir=$1 label=$2 work port
  work=$(mktemp -d); port=$(( 20000 + RANDOM % 20000 ))
  (umask 077; echo "bench ca password" > "$work/pw.txt")
  MAYFLY_PATH=$work/home "$dir/mayfly" ca init --name Bench --dns 127.0.0.1 --address 127.0.0.1:$port \
      --provisioner ops --password-file "$work/pw.txt" --provisioner-password-file "$work/pw.txt" >/dev/null 2>&1
  MAYFLY_PATH=$work/home MAYFLY_LOG=warn "$dir/mayfly-ca" "$work/home/config/ca.json" --password-file "$work/pw.txt" >"$work/log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "serving on" "$work/log" 2>/dev/null && break; sleep 0.1; done
  local out
  out=$("$bench" sign --ca-url https://127.0.0.1:$port --root "$work/home/certs/root_ca.crt" \
      --password-file "$work/pw.txt" -n "$n" -c "$c" --pid "$pid" --json 2>&1 | tail -1)
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$work"
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(sys.argv[2], r['server_cpu_us_per_cert'], r['certs_per_second'], r.get('latency_p99_ms'), r['failures'])" "$out" "$label"
}
for i in $(seq "$pairs"); do
  if (( i % 2 )); then run "$a" A; run "$b" B; else run "$b" B; run "$a" A; fi
done
