#!/usr/bin/env bash
# Container entrypoint. The launcher checks the tenant's settings (a bad one exits 2 with one line
# naming the variable), then runs `serve run` on the config in-process, so the container's SIGTERM
# reaches serve run's clean shutdown: requests in flight finish, Ray stops, exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m deployments.launch "${SERVE_CONFIG:-serve_config.yaml}"
