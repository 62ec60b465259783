#!/usr/bin/env bash
# Installs Speed Kings into ./.venv (first run only) and runs `speed-kings ARGS`.
# With no arguments: a demo benchmark of the built-in simulated providers (no API key needed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
if [ "$#" -eq 0 ]; then
  set -- probe --demo
fi
exec "$VENV/bin/speed-kings" "$@"
