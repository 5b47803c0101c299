#!/usr/bin/env bash
# Set up and run the whole test suite from a fresh clone (what .ci/run calls).
# 1. every test in .venv (TensorFlow CPU, Keras, LiteRT);
# 2. the device tests again in .venv-device, which holds only device/requirements.txt,
#    to prove device/run.py needs no TensorFlow;
# 3. and in .venv-bookworm, pinned as Raspberry Pi OS Bookworm users install it (numpy 1.x, OpenCV 4.11).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
scripts/setup_venv.sh .venv train,dev,mqtt,distributed
scripts/setup_mosquitto.sh  # the MQTT broker the telemetry tests start (apt-get as root)
.venv/bin/python -m pytest tests "$@"
scripts/setup_venv.sh .venv-device device
.venv-device/bin/python -m pytest tests/device "$@"
scripts/setup_venv.sh .venv-bookworm device device/constraints-bookworm.txt
.venv-bookworm/bin/python -m pytest tests/device "$@"
