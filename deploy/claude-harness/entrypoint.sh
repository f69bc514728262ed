#!/bin/sh
# claude-harness entrypoint: record every Claude Code session of this container.
#
# At each start it
#   1. takes the collector from the environment: METRICS_ENDPOINT (default the
#      router's http://llm-router:8013/metrics/harness; CLAUDE_METRICS_ENDPOINT
#      wins when set) and CLAUDE_METRICS_TOKEN (or a file: CLAUDE_METRICS_TOKEN_FILE);
#   2. picks the state dir (spool, inbox, log): CLAUDE_METRICS_STATE_DIR, else
#      ~/.local/state/claude-metrics, else /tmp/claude-metrics-<uid> when HOME is
#      read-only, and exports it so every hook of every session uses the same one;
#   3. wires the hooks for the container's user (`claude-metrics install`,
#      idempotent: a restarted container is not wired twice; CLAUDE_METRICS_SCOPE=
#      managed puts them in /etc/claude-code/managed-settings.json when running as root;
#      CLAUDE_METRICS_INSTALL=0 skips it, for images wired at build time);
#   4. flushes the spool now and every CLAUDE_METRICS_FLUSH_INTERVAL seconds
#      (default 60): containers have no cron;
#   5. runs the command as its child, forwarding SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2
#      (and SIGINT when no terminal delivers it itself), so `docker stop` reaches it;
#   6. when it exits, flushes once more within CLAUDE_METRICS_STOP_FLUSH_MS (default
#      5000) so nothing waits in the spool of a stopped container, and exits with
#      the command's status.
#
# It stays the command's parent instead of exec-ing it: step 6 needs a process
# that outlives the command. Run it under an init (compose `init: true`, or
# `docker run --init`) so orphaned hook drainers are reaped.
#
# Never stops the command from starting: a collector that is down, a settings
# file it cannot write, a read-only HOME are reported on stderr, and the
# command runs regardless (events wait in the spool).
set -u

CM=${CLAUDE_METRICS_BIN:-claude-metrics}
say() { printf 'claude-harness: %s\n' "$*" >&2; }

if [ $# -eq 0 ]; then
  say 'no command given (e.g. docker run … claude-harness claude -p "…"); nothing to run'
  exit 64
fi
if ! command -v "$CM" >/dev/null 2>&1; then
  say "$CM not found on PATH: running the command without metrics"
  exec "$@"
fi

# 1. Where events go.
METRICS_ENDPOINT=${METRICS_ENDPOINT:-http://llm-router:8013/metrics/harness}
CLAUDE_METRICS_ENDPOINT=${CLAUDE_METRICS_ENDPOINT:-$METRICS_ENDPOINT}
export METRICS_ENDPOINT CLAUDE_METRICS_ENDPOINT
if [ -z "${CLAUDE_METRICS_TOKEN:-}" ] && [ -n "${CLAUDE_METRICS_TOKEN_FILE:-}" ]; then
  if CLAUDE_METRICS_TOKEN=$(cat "$CLAUDE_METRICS_TOKEN_FILE"); then export CLAUDE_METRICS_TOKEN; else say "cannot read CLAUDE_METRICS_TOKEN_FILE=$CLAUDE_METRICS_TOKEN_FILE"; fi
fi

# 2. One state dir for this process tree, writable.
usable() { mkdir -p "$1" 2>/dev/null && chmod 700 "$1" 2>/dev/null && [ -w "$1" ]; }
if [ -n "${CLAUDE_METRICS_STATE_DIR:-}" ] && ! usable "$CLAUDE_METRICS_STATE_DIR"; then
  say "CLAUDE_METRICS_STATE_DIR=$CLAUDE_METRICS_STATE_DIR is not writable"
  CLAUDE_METRICS_STATE_DIR=
fi
if [ -z "${CLAUDE_METRICS_STATE_DIR:-}" ]; then
  preferred=${XDG_STATE_HOME:-${HOME:-/nonexistent}/.local/state}/claude-metrics
  if usable "$preferred"; then
    CLAUDE_METRICS_STATE_DIR=$preferred
  else
    CLAUDE_METRICS_STATE_DIR=${TMPDIR:-/tmp}/claude-metrics-$(id -u)
    usable "$CLAUDE_METRICS_STATE_DIR" || say "no writable state dir (tried $preferred and $CLAUDE_METRICS_STATE_DIR): events cannot be spooled"
    say "$preferred is not writable (read-only HOME?): the spool lives in $CLAUDE_METRICS_STATE_DIR and is lost with the container"
  fi
fi
export CLAUDE_METRICS_STATE_DIR

# 3. Hooks for this user (idempotent).
if [ "${CLAUDE_METRICS_INSTALL:-1}" != 0 ]; then
  if out=$("$CM" install --scope "${CLAUDE_METRICS_SCOPE:-user}" 2>&1); then
    case $out in *'already installed'*) ;; *) printf '%s\n' "$out" | sed 's/^/claude-harness: /' >&2 ;; esac
  else
    say "hooks not wired, sessions will not be recorded: $out"
  fi
fi

# 4. The periodic flush (first one now: what a previous run of this container left).
interval=${CLAUDE_METRICS_FLUSH_INTERVAL:-60}
stop_ms=${CLAUDE_METRICS_STOP_FLUSH_MS:-5000}
case $interval in '' | *[!0-9]* | 0) say "CLAUDE_METRICS_FLUSH_INTERVAL must be a whole number of seconds > 0, got '$interval'; using 60"; interval=60 ;; esac
case $stop_ms in '' | *[!0-9]*) say "CLAUDE_METRICS_STOP_FLUSH_MS must be a whole number, got '$stop_ms'; using 5000"; stop_ms=5000 ;; esac
(
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  nap=
  while :; do
    # Bounded like the stop flush, so stopping never waits long for this one.
    "$CM" flush --timeout-ms "$stop_ms" </dev/null >/dev/null 2>&1
    sleep "$interval" &
    nap=$!
    wait "$nap"
  done
) &
flusher=$!

# 5. The command, with the signals docker sends forwarded to it. Its stdin is
# this one (an async list would get /dev/null otherwise).
exec 3<&0
"$@" <&3 3<&- &
child=$!
exec 3<&-
forward() { kill -s "$1" "$child" 2>/dev/null; }
for sig in TERM HUP QUIT USR1 USR2; do
  # shellcheck disable=SC2064 # the signal name is meant to be fixed now
  trap "forward $sig" "$sig"
done
# A terminal's Ctrl-C already reaches the command (same process group); a second copy would be a double Ctrl-C.
if [ -t 0 ]; then trap ':' INT; else trap 'forward INT' INT; fi

# `wait` returns early when a trapped signal arrives; wait again until the command is gone.
status=0
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
trap - TERM HUP QUIT USR1 USR2 INT

# 6. Deliver what the command's sessions left, then leave with its status. The
# hooks' drainer may still be turning inbox files into events: give it part of
# the budget, then flush (which also drains an inbox nobody drains any more).
kill "$flusher" 2>/dev/null
wait "$flusher" 2>/dev/null
inbox=$CLAUDE_METRICS_STATE_DIR/inbox
waited=0
while [ "$waited" -lt "$((stop_ms / 2))" ] && ls "$inbox" 2>/dev/null | grep -q '\.hook$'; do
  sleep 0.1
  waited=$((waited + 100))
done
"$CM" flush --timeout-ms "$stop_ms" </dev/null >/dev/null 2>&1
case $? in
  0) ;;
  75) say "the collector at $CLAUDE_METRICS_ENDPOINT is unavailable: events stay in $CLAUDE_METRICS_STATE_DIR/spool for the next start" ;;
  *) say "the final flush failed; events stay in $CLAUDE_METRICS_STATE_DIR/spool (see its claude-metrics.log)" ;;
esac
exit "$status"
