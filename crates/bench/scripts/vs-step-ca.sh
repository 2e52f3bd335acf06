#!/usr/bin/env bash
# mayfly-ca and the real step-ca in one run: two fresh CAs, from `mayfly ca init` and
# `step ca init` with the same answers, then `mayfly-bench compare` over them (A = mayfly,
# B = step-ca), the order swapped each pair. Both CAs log at their default level, each to a file.
#
# Usage: crates/bench/scripts/vs-step-ca.sh [PAIRS] [N] [C] [-- MORE COMPARE FLAGS]
#   BIN        directory of mayfly, mayfly-ca and mayfly-bench   [target/release]
#   STEP_TOOLS directory of step and step-ca (0.19)              [../shared/tools]
#   KEEP=1     keep the work directory (both CAs, their logs) and print where it is
#   MAYFLY_DB  mayfly's store instead of its SQLite file, as ca.json `db` names one: an empty
#              PostgreSQL or MySQL/MariaDB database, e.g. postgresql://postgres@127.0.0.1:5432/vs
set -euo pipefail
positional=()
while (( $# )) && [[ $1 != -- ]]; do positional+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
pairs=${positional[0]:-4}; n=${positional[1]:-10000}; c=${positional[2]:-32}
bin=${BIN:-target/release}
tools=${STEP_TOOLS:-../shared/tools}
source "$(dirname "$0")/common.sh"

# mayfly: mayfly ca init, then mayfly-ca on its ca.json.
mport=$(free_port); mplain=$(free_port)
MAYFLY_PATH=$work/mayfly "$bin/mayfly" ca init --name Bench --dns 127.0.0.1 \
    --address 127.0.0.1:$mport --insecure-address 127.0.0.1:$mplain --provisioner ops \
    --password-file "$work/pw.txt" --provisioner-password-file "$work/pw.txt" >"$work/mayfly-init.log" 2>&1
if [[ -n ${MAYFLY_DB:-} ]]; then
    python3 - "$work/mayfly/config/ca.json" "$MAYFLY_DB" <<'PY'
import json, sys
path, dsn = sys.argv[1], sys.argv[2]
kind = "postgresql" if dsn.startswith("postgres") else "mysql"
config = json.load(open(path))
config["db"] = {"type": kind, "dataSource": dsn}
json.dump(config, open(path, "w"), indent=2)
PY
fi
MAYFLY_PATH=$work/mayfly "$bin/mayfly-ca" "$work/mayfly/config/ca.json" \
    --password-file "$work/pw.txt" >"$work/mayfly-ca.log" 2>&1 &
mpid=$!; pids+=("$mpid")

# step-ca: step ca init, then step-ca on its ca.json.
sport=$(free_port)
STEPPATH=$work/step HOME=$work "$tools/step" ca init --name Bench --dns 127.0.0.1 \
    --address 127.0.0.1:$sport --provisioner ops \
    --password-file "$work/pw.txt" --provisioner-password-file "$work/pw.txt" >"$work/step-init.log" 2>&1
STEPPATH=$work/step HOME=$work "$tools/step-ca" "$work/step/config/ca.json" \
    --password-file "$work/pw.txt" >"$work/step-ca.log" 2>&1 &
spid=$!; pids+=("$spid")

wait_for "$work/mayfly-ca.log" "serving on"
wait_for "$work/step-ca.log" "Serving HTTPS"
"$bin/mayfly-bench" compare \
    --a-name mayfly --a-url "https://127.0.0.1:$mport" --a-root "$work/mayfly/certs/root_ca.crt" \
    --a-password-file "$work/pw.txt" --a-pid "$mpid" \
    --b-name step-ca --b-url "https://127.0.0.1:$sport" --b-root "$work/step/certs/root_ca.crt" \
    --b-password-file "$work/pw.txt" --b-pid "$spid" \
    --pairs "$pairs" -n "$n" -c "$c" "$@"
