#!/usr/bin/env bash
# Benchmark elbo against PyTorch on this machine: sets up a virtual environment with torch (from PyPI) once,
# then runs bench/bench.py (or, with --images first, bench/images.py: image loading against torchvision; with
# --family first, bench/family.py: IWAE, conv and eval against PyTorch; with --peers first, bench/peers.py: every
# speed workload against eager PyTorch, torch.compile and JAX). Run it on an otherwise idle machine. Extra arguments
# go to bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${ELBO_BENCH_PYTHON:-bench/.venv/bin/python}"
if [ ! -x "$PY" ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
  PY=bench/.venv/bin/python
fi
export ELBO_DATA_DIR="${ELBO_DATA_DIR:-$(cd .. && pwd)/shared/data/mnist}"
if [ "${1:-}" = "--images" ]; then
  shift
  exec "$PY" bench/images.py "$@"
fi
if [ "${1:-}" = "--peers" ]; then
  shift
  exec "$PY" bench/peers.py "$@"
fi
if [ "${1:-}" = "--family" ]; then
  shift
  exec "$PY" bench/family.py "$@"
fi
exec "$PY" bench/bench.py "$@"
