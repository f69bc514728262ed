#!/usr/bin/env bash
# install.sh: from a fresh clone to working metrics in one command.
#
#   ./install.sh [--prefix DIR] [--scope user|project|local] [--no-hooks]
#                [--with-collector [--port N]] [--systemd]
#
# 1. checks Node >= 20;  2. installs dependencies (npm ci) unless they are
# already complete;  3. builds dist/;  4. puts a `claude-metrics` launcher in
# DIR (default ~/.local/bin);  5. runs `claude-metrics install --scope SCOPE`
# (hooks in Claude Code's settings.json, backed up first);  6. optionally starts
# the local collector in the background, or prints a systemd user unit for it.
# Re-running it is safe: every step checks before it changes anything.
set -euo pipefail

PREFIX="${HOME}/.local/bin"
SCOPE=user
HOOKS=1
COLLECTOR=0
SYSTEMD=0
PORT=8013

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --scope) SCOPE="${2:?--scope needs user, project or local}"; shift 2 ;;
    --scope=*) SCOPE="${1#*=}"; shift ;;
    --no-hooks) HOOKS=0; shift ;;
    --with-collector) COLLECTOR=1; shift ;;
    --port) PORT="${2:?--port needs a number}"; shift 2 ;;
    --port=*) PORT="${1#*=}"; shift ;;
    --systemd) SYSTEMD=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
case "$SCOPE" in user|project|local) ;; *) die "--scope must be user, project or local, got '$SCOPE'" ;; esac
case "$PORT" in ''|*[!0-9]*) die "--port must be a number, got '$PORT'" ;; esac

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# Project and local scopes mean the directory install.sh is run from.
PROJECT_DIR="$(pwd -P)"
done_list=()

# 1. Node >= 20
command -v node >/dev/null 2>&1 || die "Node.js 20 or newer is required (https://nodejs.org); node is not on PATH"
NODE="$(command -v node)"
NODE_MAJOR="$("$NODE" -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js 20 or newer is required; $NODE is $("$NODE" --version)"
NODE="$("$NODE" -p 'require("fs").realpathSync(process.execPath)')"

cd "$REPO"

# 2. Dependencies: npm ci only when node_modules is missing or incomplete.
if [ -d node_modules ] && npm ls --depth=0 >/dev/null 2>&1; then
  echo "install.sh: dependencies already installed"
else
  echo "install.sh: installing dependencies (npm ci; better-sqlite3 compiles from source)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  done_list+=("installed npm dependencies in $REPO/node_modules")
fi

# 3. Build (atomic: dist/ is swapped in whole).
npm run --silent build
done_list+=("built $REPO/dist")

# 4. The launcher: pins this node, so a different node on PATH later cannot break the hooks.
MARK="# claude-metrics launcher written by install.sh"
LAUNCHER="$PREFIX/claude-metrics"
mkdir -p "$PREFIX"
if [ -e "$LAUNCHER" ] && ! grep -qF "$MARK" "$LAUNCHER" 2>/dev/null; then
  die "$LAUNCHER exists and was not written by install.sh; move it away or use --prefix"
fi
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
new_launcher="$(printf '#!/bin/sh\n%s\nexec %s %s "$@"\n' "$MARK" "$(quote "$NODE")" "$(quote "$REPO/bin/claude-metrics")")"
if [ -f "$LAUNCHER" ] && [ "$(cat "$LAUNCHER")" = "$new_launcher" ]; then
  echo "install.sh: $LAUNCHER is up to date"
else
  printf '%s\n' "$new_launcher" >"$LAUNCHER.tmp.$$"
  chmod 755 "$LAUNCHER.tmp.$$"
  mv -f "$LAUNCHER.tmp.$$" "$LAUNCHER"
  done_list+=("wrote $LAUNCHER (runs $NODE $REPO/bin/claude-metrics)")
fi
"$LAUNCHER" --version >/dev/null || die "$LAUNCHER does not run"

# 5. Hooks.
if [ "$HOOKS" = 1 ]; then
  (cd "$PROJECT_DIR" && "$LAUNCHER" install --scope "$SCOPE")
  done_list+=("claude-metrics install --scope $SCOPE (hooks in Claude Code's settings; backup beside it)")
fi

# 6. Collector.
STATE_DIR="${CLAUDE_METRICS_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/claude-metrics}"
PIDFILE="$STATE_DIR/serve.pid"
if [ "$COLLECTOR" = 1 ]; then
  mkdir -p "$STATE_DIR" && chmod 700 "$STATE_DIR"
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "install.sh: collector already running (pid $(cat "$PIDFILE"))"
  else
    nohup "$LAUNCHER" serve --port "$PORT" >>"$STATE_DIR/serve.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    # Wait (bounded) for the listening line, so a port in use is reported now.
    for _ in $(seq 1 100); do
      grep -q "listening on" "$STATE_DIR/serve.log" 2>/dev/null && break
      kill -0 "$(cat "$PIDFILE")" 2>/dev/null || die "the collector did not start: see $STATE_DIR/serve.log"
      sleep 0.1
    done
    done_list+=("started the collector on http://127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $STATE_DIR/serve.log); stop it: kill \$(cat $PIDFILE)")
  fi
  if [ "$PORT" != 8013 ]; then
    echo "install.sh: the collector listens on port $PORT, not the default 8013: set CLAUDE_METRICS_ENDPOINT=http://127.0.0.1:$PORT/metrics/harness (or \"endpoint\" in ~/.config/claude-metrics/config.json)"
  fi
fi
if [ "$SYSTEMD" = 1 ]; then
  cat <<EOF
# systemd user unit: save as ~/.config/systemd/user/claude-metrics.service, then
#   systemctl --user daemon-reload && systemctl --user enable --now claude-metrics
[Unit]
Description=claude-metrics collector
[Service]
ExecStart=$LAUNCHER serve --port $PORT
Restart=on-failure
[Install]
WantedBy=default.target
EOF
fi

echo
echo "claude-metrics is installed. What this did:"
for d in "${done_list[@]}"; do echo "  - $d"; done
case ":$PATH:" in *":$PREFIX:"*) ;; *) echo "  ! $PREFIX is not on your PATH: add  export PATH=\"$PREFIX:\$PATH\"  to your shell profile" ;; esac
echo "Check it:  claude-metrics doctor"
echo "Undo it:   claude-metrics uninstall$([ "$SCOPE" != user ] && echo " --scope $SCOPE"); rm $LAUNCHER$([ "$COLLECTOR" = 1 ] && echo "; kill \$(cat $PIDFILE)")"
