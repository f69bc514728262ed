#!/usr/bin/env bash
# Runs the reference ccusage 20.0.24 (native linux-x64 build), installing it on first use into
# .cache/ccusage. It is not a devDependency: its other platform packages at 20.0.24 are missing
# from the registry, which makes `npm ci` refuse the lock file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.cache/ccusage"
if [ ! -x "$prefix/node_modules/.bin/ccusage" ]; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund \
    ccusage@20.0.24 @ccusage/ccusage-linux-x64@20.0.24 >&2
fi
exec "$prefix/node_modules/.bin/ccusage" "$@"
