#!/usr/bin/env bash
# TypeScript SDK smoke test: install the pinned @modelcontextprotocol/sdk (package-lock.json)
# and run smoke.test.mjs with node's built-in test runner against ctmr-skill serve.
# Env: CTMR_SKILL_BIN, CTMR_SKILL_PYTHON (see smoke.test.mjs). Needs node >= 18 and npm.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "tests/ts/run.sh: node not found; install Node.js >= 18" >&2; exit 2; }
command -v npm >/dev/null || { echo "tests/ts/run.sh: npm not found; install npm" >&2; exit 2; }
# Reinstall only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.ctmr-lock-stamp; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.ctmr-lock-stamp
fi
exec node --test --test-reporter=spec smoke.test.mjs
