#!/usr/bin/env bash
# Runs benchmarks/gpu_suite.py on a GPU machine that lacks diffusers (it has PyTorch, Triton, transformers):
# installs the wheels carried in .whl/ into /tmp/site first. Make them here, once, in the repository root:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
# Usage: bash benchmarks/gpu_suite.sh OUT_DIR [gpu_suite.py options]
set -euo pipefail; cd "$(dirname "$0")/.."; compgen -G ".whl/*.whl" >/dev/null || { echo "no wheels in .whl/: download them first (see the top of this file)" >&2; exit 1; }; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 python3 benchmarks/gpu_suite.py --out "${1:?usage: gpu_suite.sh OUT_DIR}" "${@:2}"
