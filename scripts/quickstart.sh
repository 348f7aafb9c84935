#!/usr/bin/env bash
# Sets up (venv, install) and runs the main job: a local Ray head, the API and leaderboard
# page on 127.0.0.1:8000, and the quickstart sweep submitted as a Ray job. Ctrl-C stops
# the service and the Ray head it started. Extra arguments go to `cifar-sweeps serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
exec .venv/bin/cifar-sweeps serve --submit "${CIFAR_SWEEPS_SUBMIT:-quickstart}" "$@"
