#!/usr/bin/env bash
# The benchmark (issue 6): how much Speed Kings distorts what it measures, against the
# simulator's truth, beside the openai SDK and httpx-sse. Installs the `bench` extra into
# ./.venv (as run.sh and test.sh do), then prints one table; --quick takes seconds.
#   bash scripts/bench.sh           # full run, a few minutes
#   bash scripts/bench.sh --quick   # few iterations
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" bench
cd "$ROOT"
exec "$VENV/bin/python" -m benchmarks "$@"
