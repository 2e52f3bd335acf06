#!/usr/bin/env bash
# ACME flows against mayfly-ca and the real step-ca in one run: two fresh CAs from `mayfly ca
# init` and `step ca init` with the same answers, each with an ACME provisioner, then
# `mayfly-bench acme` against each in turn, RUNS times, the order swapped each time.
#
# step-ca has no test settings for validation: it fetches http-01 from port 80 of the
# identifier. So every order is for the IP address 127.0.0.1 (RFC 8738) and mayfly-bench answers
# on port 80 (run as root); mayfly's provisioner is pointed at the same port. Each CA is started
# afresh for each run (the per-address ACME account limit of mayfly-ca allows 20 accounts an
# hour).
#
# Usage: crates/bench/scripts/acme-vs-step-ca.sh [RUNS] [N] [C]
#   BIN        directory of mayfly, mayfly-ca and mayfly-bench   [target/release]
#   STEP_TOOLS directory of step and step-ca (0.19)              [../shared/tools]
set -euo pipefail
runs=${1:-3}; n=${2:-300}; c=${3:-16}
bin=${BIN:-target/release}
tools=${STEP_TOOLS:-../shared/tools}
source "$(dirname "$0")/common.sh"

start_mayfly() { # dir port
  local dir=$1 port=$2
  MAYFLY_PATH=$dir "$bin/mayfly" ca init --name Bench --dns 127.0.0.1 \
      --address 127.0.0.1:$port --insecure-address "" --provisioner ops \
      --password-file "$work/pw.txt" --provisioner-password-file "$work/pw.txt" >"$dir.init.log" 2>&1
  MAYFLY_PATH=$dir "$bin/mayfly" ca provisioner add acme --type ACME >>"$dir.init.log" 2>&1
  python3 - "$dir/config/ca.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
for provisioner in config["authority"]["provisioners"]:
    if provisioner["type"] == "ACME":
        provisioner["insecureHttp01Port"] = 80
        provisioner["insecureValidationAddress"] = "127.0.0.1"
json.dump(config, open(path, "w"), indent=2)
PY
  MAYFLY_PATH=$dir MAYFLY_LOG=warn "$bin/mayfly-ca" "$dir/config/ca.json" \
      --password-file "$work/pw.txt" >"$dir.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_for "$dir.log" "serving on"
}

start_step() { # dir port
  local dir=$1 port=$2
  STEPPATH=$dir HOME=$work "$tools/step" ca init --name Bench --dns 127.0.0.1 \
      --address 127.0.0.1:$port --provisioner ops \
      --password-file "$work/pw.txt" --provisioner-password-file "$work/pw.txt" >"$dir.init.log" 2>&1
  STEPPATH=$dir HOME=$work "$tools/step" ca provisioner add acme --type ACME \
      --ca-config "$dir/config/ca.json" >>"$dir.init.log" 2>&1
  STEPPATH=$dir HOME=$work "$tools/step-ca" "$dir/config/ca.json" \
      --password-file "$work/pw.txt" >"$dir.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_for "$dir.log" "Serving HTTPS"
}

one_run() { # name run
  local name=$1 run=$2 dir="$work/$1-$2" port
  port=$(free_port)
  if [[ $name == mayfly ]]; then start_mayfly "$dir" "$port"; else start_step "$dir" "$port"; fi
  local report
  report=$("$bin/mayfly-bench" acme --ca-url "https://127.0.0.1:$port" \
      --root "$dir/certs/root_ca.crt" --provisioner acme --http-port 80 --identifier 127.0.0.1 \
      -n "$n" -c "$c" --pid "$pid" --json)
  echo "{\"ca\": \"$name\", \"run\": $run, \"report\": $report}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for run in $(seq 1 "$runs"); do
  if (( run % 2 )); then order=(mayfly step-ca); else order=(step-ca mayfly); fi
  for name in "${order[@]}"; do one_run "$name" "$run"; done
done
