#!/usr/bin/env bash
# Make sure mosquitto, the MQTT broker the telemetry tests start (tests/device/mqtt_broker.py), is here,
# and what the Pi unit's tests use: systemd-analyze (package systemd), which scores it, and for the system
# Python libseccomp's module (python3-seccomp), which applies its syscall filters, and python3-venv, which
# scripts/install_pi.sh needs (tests/device/test_install.py, test_unit_security.py).
# Debian/Ubuntu as root: apt-get install. Elsewhere: say so, and the telemetry tests skip, except
# under CI=true, where a missing broker is an error.
set -euo pipefail
have() { { command -v mosquitto || [ -x /usr/sbin/mosquitto ]; } >/dev/null && command -v mosquitto_passwd >/dev/null &&
  command -v systemd-analyze >/dev/null && /usr/bin/python3 -c 'import seccomp, ensurepip' 2>/dev/null; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients systemd python3-seccomp python3-venv >/dev/null
  have && exit 0
fi
msg="mosquitto, systemd-analyze, python3-seccomp or python3-venv is missing and cannot be installed here (needs root and apt-get); install the packages mosquitto, mosquitto-clients, systemd, python3-seccomp and python3-venv"
if [ "${CI:-}" = true ]; then
  echo "error: $msg" >&2
  exit 1
fi
echo "warning: $msg; the telemetry and Pi install tests will skip" >&2
