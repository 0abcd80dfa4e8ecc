#!/usr/bin/env bash
# Make the runtime reachable at http://localhost:$LOCAL_PORT (default 7840) through
# `kubectl port-forward` to the Service stepflow-server.
#
# Usage: scripts/port-forward.sh [--background | --stop]
#   (no option)    forward in the foreground until Ctrl-C
#   --background   forward in the background and wait until the runtime answers;
#                  does nothing if it already answers
#   --stop         stop the background forward started by --background
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mode=foreground
case "${1:-}" in
  "") ;;
  --background) mode=background ;;
  --stop) mode=stop ;;
  -h | --help) usage; exit 0 ;;
  *) die "unknown argument $1 (try --help)" ;;
esac

state_dir="${TMPDIR:-/tmp}"
pidfile="$state_dir/stepflow-port-forward-$LOCAL_PORT.pid"
logfile="$state_dir/stepflow-port-forward-$LOCAL_PORT.log"
health_url="http://localhost:$LOCAL_PORT/api/v1/health"
forward=("${KUBECTL[@]}" -n "$NAMESPACE" port-forward svc/stepflow-server "$LOCAL_PORT:7840")

healthy() { curl -fsS --max-time 2 -o /dev/null "$health_url" 2>/dev/null; }
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
stop() {
  if running; then
    run kill "$(cat "$pidfile")"
  fi
  rm -f "$pidfile"
}

case "$mode" in
  stop)
    if running; then stop; say "port-forward stopped"; else rm -f "$pidfile"; say "no port-forward running"; fi
    ;;
  foreground)
    need kubectl "See docs/deployment.md."
    say "forwarding localhost:$LOCAL_PORT to svc/stepflow-server:7840 (Ctrl-C stops)"
    run exec "${forward[@]}"
    ;;
  background)
    need kubectl "See docs/deployment.md."
    need curl "Install curl."
    if healthy; then
      say "the runtime already answers at $health_url"
      exit 0
    fi
    # A forward whose pod went away (restart, redeploy) stays alive but answers nothing.
    if running; then
      say "port-forward $(cat "$pidfile") no longer reaches the runtime: restarting it"
      stop
    fi
    say "forwarding localhost:$LOCAL_PORT to svc/stepflow-server:7840 in the background (log: $logfile)"
    printf '+' >&2; printf ' %q' "${forward[@]}" >&2; printf ' &\n' >&2
    nohup "${forward[@]}" >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 30); do
      if healthy; then
        say "the runtime answers at http://localhost:$LOCAL_PORT (stop the forward: scripts/port-forward.sh --stop)"
        exit 0
      fi
      running || break
      sleep 1
    done
    cat "$logfile" >&2 || true
    stop
    die "the runtime did not answer at $health_url: see docs/troubleshooting.md"
    ;;
esac
