#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what the tests need
# (Debian's chromium, prometheus/promtool, PostgreSQL 15, python3 FastAPI, tmux; npm deps incl. the
# native better-sqlite3 build and the pinned Claude Code CLI), builds, type-checks
# and runs every test. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql-15)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
/usr/bin/python3 -c 'import fastapi, uvicorn' >/dev/null 2>&1 || need_apt+=(python3-fastapi python3-uvicorn)
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need_apt+=(python3-yaml)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${need_apt[*]} (Debian packages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "test.sh: missing ${need_apt[*]}; install them with apt-get (needs root)" >&2
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
npm run --silent typecheck
mkdir -p .test-output
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.test-output/vitest.json "$@" || status=$?
# One plain closing line that any CI reader understands.
node -e '
  try {
    const r = require("./.test-output/vitest.json");
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  } catch { console.log("0 passed, 1 failed"); }
' || true
exit $status
