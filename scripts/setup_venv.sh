#!/usr/bin/env bash
# Create (once) and fill a virtual environment. Usage: scripts/setup_venv.sh VENV_DIR EXTRAS|device [CONSTRAINTS]
#   EXTRAS "train,dev" -> the workstation venv (TensorFlow CPU build, Keras 3, LiteRT, pytest)
#   "device"           -> only what device/run.py needs on a Pi (device/requirements.txt, and
#                         device/requirements-mqtt.txt for --mqtt) + pytest
#   CONSTRAINTS            a pip constraints file, e.g. device/constraints-bookworm.txt (Pi OS Bookworm's numpy 1.x)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1 extras=$2 constraints=${3:-}
py=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
if [ "$extras" = device ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r device/requirements.txt -r device/requirements-mqtt.txt "pytest>=8" \
    ${constraints:+-c "$constraints"}
else
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
fi
