#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (Python packages into
# ./.venv; from Debian: prometheus (the server and promtool), prometheus-alertmanager
# (amtool), chromium (status page), docker-compose (compose validation), openssl), then
# lint, types and tests. The tests include the container stage
# (tests/test_container_engine.py, as root): it installs podman and debootstrap from Debian
# and builds its images with scripts/container_images.sh, then runs the image and
# docker-compose.yml for real (about 4 minutes the first time, under 2 once the images are
# cached). Without root or apt it is skipped, saying so; with CI set it fails instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# `bench`: the peers the benchmark smoke test compares with (openai SDK, httpx-sse).
source "$ROOT/scripts/_venv.sh" test,bench
cd "$ROOT"
echo "== ruff"
"$VENV/bin/ruff" check exporter tests benchmarks dashboards
"$VENV/bin/ruff" format --check exporter tests benchmarks dashboards
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/pytest" "$@"
