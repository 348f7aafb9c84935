#!/usr/bin/env bash
# Creates .venv (once) and installs the project with its test extra into it: one line per
# step, with its time. pip runs with -qq (errors only); on a failure its log says why.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=${SETUP_LOG:-/tmp/cifar-sweeps-setup.$$.log}

step() {  # step "what" command...: runs it quietly, prints one line with its time
  local what=$1 t0=$SECONDS
  shift
  printf 'setup: %s ... ' "$what"
  if "$@" >>"$LOG" 2>&1; then
    echo "done in $((SECONDS - t0)) s"
  else
    echo "FAILED after $((SECONDS - t0)) s; the last lines of $LOG:"
    tail -n 30 "$LOG"
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  step "python virtual environment .venv" "$PY" -m venv .venv
fi
# Installed once per version of pyproject.toml: a second run of the tests skips pip.
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ -f "$stamp" ]; then
  echo "setup: cifar-sweeps already installed for this pyproject.toml (.venv)"
else
  step "pip, setuptools and wheel" .venv/bin/python -m pip install -qq --upgrade pip "setuptools>=77" wheel
  step "cifar-sweeps and its test extra (PyTorch, Ray, ...: minutes on a new machine)" \
    .venv/bin/python -m pip install -qq -e ".[test]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
rm -f "$LOG"
