#!/usr/bin/env bash
# Installs Speed Kings into ./.venv (first run only) and runs it.
#   no arguments, no API key set  -> the exporter in demo mode (simulated sim-* providers)
#   no arguments, an API key set  -> the exporter with config/speed-kings.example.yaml
#   arguments                     -> `speed-kings ARGS`, e.g. `scripts/run.sh probe --demo`
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
if [ "$#" -eq 0 ]; then
  if env | grep -qE '^[A-Z_]+_API_KEY(_FILE)?=.'; then
    set -- run --config "$ROOT/config/speed-kings.example.yaml"
  else
    set -- run --demo
  fi
fi
exec "$VENV/bin/speed-kings" "$@"
