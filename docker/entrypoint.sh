#!/usr/bin/env bash
# Container entrypoint: check the tenant's settings, then serve. A bad setting exits 2 with one
# line naming the variable, instead of a running container whose deployment failed inside Ray.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m deployments.preflight
exec serve run "${SERVE_CONFIG:-serve_config.yaml}"
