#!/usr/bin/env bash
# Create the virtual environment and install carelens with its test tools.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
# The CPU build of torch first: a plain requirement would pull a multi-GB CUDA build.
"$venv/bin/pip" install --quiet torch==2.13.0
"$venv/bin/pip" install --quiet -e ".[dev]"
touch "$venv/.installed"
echo "carelens installed in $venv" >&2
