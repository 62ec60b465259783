#!/usr/bin/env bash
# The benchmark (issue 6): how much Speed Kings distorts what it measures, against the
# simulator's truth, beside the openai SDK and httpx-sse. Installs the `bench` extra into
# ./.venv (as run.sh and test.sh do), then prints one table; --quick takes seconds.
#   bash scripts/bench.sh           # full run, a few minutes
#   bash scripts/bench.sh --quick   # few iterations
#   bash scripts/bench.sh soak      # the soak (docs/reliability.md): 60,000 probes, ~15 min;
#                                   # options after it: --probes N, --every S, --help
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" bench
cd "$ROOT"
if [ "${1:-}" = soak ]; then
  shift
  exec "$VENV/bin/python" -m benchmarks.soak "$@"
fi
exec "$VENV/bin/python" -m benchmarks "$@"
