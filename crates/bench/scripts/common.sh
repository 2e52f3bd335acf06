# Sourced by the bench scripts beside it: a work directory removed at exit (kept with KEEP=1),
# the processes started into `pids` stopped at exit, a free port, and waiting for a log line.
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [[ ${KEEP:-} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # file text
  for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "no \"$2\" in $1:" >&2; cat "$1" >&2; return 1
}
(umask 077; echo "bench ca password" > "$work/pw.txt")
