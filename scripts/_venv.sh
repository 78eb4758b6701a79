# Sourced by the scripts: make .venv with the project installed (quietly, idempotently).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=".venv/.installed-$1-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python -m pip install --quiet --disable-pip-version-check --upgrade pip
  if [ "$1" = dev ]; then
    python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  else
    python -m pip install --quiet --disable-pip-version-check -e .
  fi
  touch "$stamp"
fi
