#!/usr/bin/env bash
# ralph-wiggum.sh: the Ralph loop (run Claude Code headless on PROMPT.md, again
# and again), with every iteration recorded by claude-metrics as one task:
# outcome, duration, turns, tokens and cost, plus the hook events fired inside it.
#
#   PROMPT_FILE=PROMPT.md RALPH_LABEL=my-loop ./ralph-wiggum.sh
#
# The loop never waits on metrics and never stops because of them: when the
# collector is down, events go to the local spool and a later `claude-metrics
# flush` (cron, or the next Stop hook) delivers them. When claude-metrics is not
# installed at all, the loop still runs claude.
#
# Settings (environment):
#   PROMPT_FILE      prompt file                          (PROMPT.md)
#   RALPH_LABEL      label of this loop in the dashboard  (the directory name)
#   RALPH_PROJECT    project name                         (claude-metrics detects it)
#   MAX_ITERATIONS   stop after this many tasks; 0 = never (0)
#   SLEEP_SECONDS    pause between tasks                  (0)
#   RALPH_MODE       run  = `claude-metrics run -- claude …` (default; reads the result JSON)
#                    emit = emit_metric start/complete calls around a plain `claude` call
#   CLAUDE_METRICS   the claude-metrics command           (claude-metrics on PATH)
#   CLAUDE_BIN       the claude command                   (claude)
#   CLAUDE_ARGS      extra arguments for claude, e.g. "--allowedTools Bash --model sonnet"
set -uo pipefail

PROMPT_FILE=${PROMPT_FILE:-PROMPT.md}
RALPH_LABEL=${RALPH_LABEL:-$(basename "$PWD")}
RALPH_PROJECT=${RALPH_PROJECT:-}
MAX_ITERATIONS=${MAX_ITERATIONS:-0}
SLEEP_SECONDS=${SLEEP_SECONDS:-0}
RALPH_MODE=${RALPH_MODE:-run}
CLAUDE_METRICS=${CLAUDE_METRICS:-claude-metrics}
CLAUDE_BIN=${CLAUDE_BIN:-claude}
read -r -a CLAUDE_EXTRA <<<"${CLAUDE_ARGS:-}"

have_metrics() { command -v "$CLAUDE_METRICS" >/dev/null 2>&1; }

# Compatible with the emit_metric calls loops already make, e.g.
#   emit_metric --source ralph --event ralph_task_started --task-id T --label L
#   emit_metric --source ralph --event ralph_task_completed --task-id T --label L --duration-ms 1234 --success true
# Never fails, never prints, returns within emit's deadline (300 ms) even when
# the collector is down: the event is spooled instead.
emit_metric() {
  have_metrics || return 0
  "$CLAUDE_METRICS" emit "$@" </dev/null >/dev/null 2>&1 || true
}

now_ms() { date +%s%3N; }

if [ ! -f "$PROMPT_FILE" ]; then
  echo "ralph-wiggum.sh: $PROMPT_FILE not found (set PROMPT_FILE)" >&2
  exit 2
fi

run_prefix="$(date -u +%Y%m%dT%H%M%SZ)-$$"
i=0
while :; do
  i=$((i + 1))
  task_id="${run_prefix}-${i}"
  prompt="$(cat "$PROMPT_FILE")"
  project_args=()
  [ -n "$RALPH_PROJECT" ] && project_args=(--project "$RALPH_PROJECT")

  if [ "$RALPH_MODE" = run ] && have_metrics; then
    # One recorded task; exits with claude's own status.
    "$CLAUDE_METRICS" run --source ralph --task-id "$task_id" --label "$RALPH_LABEL" "${project_args[@]}" \
      -- "$CLAUDE_BIN" -p "$prompt" --output-format json "${CLAUDE_EXTRA[@]}"
    status=$?
  else
    emit_metric --source ralph --event ralph_task_started --task-id "$task_id" --label "$RALPH_LABEL" "${project_args[@]}"
    started=$(now_ms)
    CLAUDE_METRICS_SOURCE=ralph CLAUDE_METRICS_TASK_ID="$task_id" CLAUDE_METRICS_LABEL="$RALPH_LABEL" \
      "$CLAUDE_BIN" -p "$prompt" --output-format json "${CLAUDE_EXTRA[@]}"
    status=$?
    success=false
    [ "$status" -eq 0 ] && success=true
    emit_metric --source ralph --event ralph_task_completed --task-id "$task_id" --label "$RALPH_LABEL" "${project_args[@]}" \
      --duration-ms "$(($(now_ms) - started))" --success "$success" --exit-code "$status"
  fi
  echo "ralph-wiggum.sh: task $task_id exited $status" >&2

  if [ "$MAX_ITERATIONS" -gt 0 ] && [ "$i" -ge "$MAX_ITERATIONS" ]; then break; fi
  [ "$SLEEP_SECONDS" -gt 0 ] && sleep "$SLEEP_SECONDS"
done
