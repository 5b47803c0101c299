#!/usr/bin/env bash
# Make sure mosquitto, the MQTT broker the telemetry tests start (tests/device/mqtt_broker.py), is here.
# Debian/Ubuntu as root: apt-get install. Elsewhere: say so, and the telemetry tests skip, except
# under CI=true, where a missing broker is an error.
set -euo pipefail
have() { { command -v mosquitto || [ -x /usr/sbin/mosquitto ]; } >/dev/null && command -v mosquitto_passwd >/dev/null; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
  have && exit 0
fi
msg="mosquitto is not installed and cannot be installed here (needs root and apt-get); install the packages mosquitto and mosquitto-clients"
if [ "${CI:-}" = true ]; then
  echo "error: $msg" >&2
  exit 1
fi
echo "warning: $msg; the telemetry tests will skip" >&2
