#!/usr/bin/env bash
# Install the Node SDK's dev tools (when missing) and run its build and tests against a real
# StripeMeter server (the repository's .venv must exist: scripts/test creates it first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
exec npm test --silent
