#!/usr/bin/env bash
# Sets up (venv, install, headless Chromium for the page test) and runs the whole test suite:
# ruff, the unit tier (about a minute: pure functions and the in-process app), then the
# integration and end-to-end tiers (PostgreSQL, a wheel, real Ray heads). `--fast` runs ruff
# and the unit tier alone; other arguments go to one pytest run instead
# (`bash scripts/test.sh tests/unit/sweepspec/test_spec.py -k bohb`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
lint() {
  .venv/bin/ruff check cifar_sweeps tests benchmarks scripts
  .venv/bin/ruff format --check cifar_sweeps tests benchmarks scripts  # `ruff format` fixes it
}
if [ "${1:-}" = "--fast" ]; then
  lint
  exec .venv/bin/python -m pytest -q -m unit -n auto
fi
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser test..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: chromium could not be installed; the browser test will be skipped"
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's postgresql for the store tests..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "warning: postgresql could not be installed; the PostgreSQL store tests will be skipped"
fi
# The real CIFAR-10 archive, when it lies beside the checkout (offline machines).
if [ -z "${CIFAR10_ARCHIVE:-}" ] && [ -f ../shared/data/cifar10-jpeg.tar.xz ]; then
  export CIFAR10_ARCHIVE=$(cd ../shared/data && pwd)/cifar10-jpeg.tar.xz
fi
export RAY_USAGE_STATS_ENABLED=0
lint
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
.venv/bin/python -m pytest -q -m unit -n auto   # on every core; fails fast, before any Ray head starts
# Two workers, a test file each (CIFAR_SWEEPS_TEST_WORKERS=0 runs them one at a time): most of
# an end-to-end test waits (a Ray head, a job, a subprocess), so two files overlap on two cores
# and the tiers take about three quarters of the serial time. Each worker is a pytest session
# of its own, so each starts its own Ray head and PostgreSQL on free ports. The waits that
# contention stretches are given a loaded machine's time (the page's first probe 240 s).
# (Grouping the Ray tests on one worker with `--dist loadgroup` has no effect with pytest 9.2:
# xdist 3.8 renames items through `_nodeid`, which pytest 9.2 no longer reads.)
.venv/bin/python -m pytest -q -m "not unit" -n "${CIFAR_SWEEPS_TEST_WORKERS:-2}" --dist loadfile --durations=60
