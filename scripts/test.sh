#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then lint, types, tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" test
cd "$ROOT"
echo "== ruff"
"$VENV/bin/ruff" check exporter tests benchmarks
"$VENV/bin/ruff" format --check exporter tests benchmarks
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/pytest" "$@"
