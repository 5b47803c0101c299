#!/usr/bin/env bash
# Install ferlite on Raspberry Pi OS (Bookworm or Trixie, 64-bit) as a service that starts on boot.
#
#   sudo scripts/install_pi.sh [--mode driver|kiosk] [--args "MORE run.py FLAGS"] [--user ferlite]
#                              [--prefix /opt/ferlite] [--no-apt] [--no-start]
#   scripts/install_pi.sh --render [same options]      # print the filled-in unit, install nothing
#
# 1. apt: python3-venv and python3-picamera2 (picamera2 comes from apt, not pip);
# 2. a system user (default ferlite) in group video, which owns the camera devices;
# 3. PREFIX/app/device (a copy of device/: the runtime, its models and the commands its messages name,
#    compiled) and PREFIX/venv, a venv with --system-site-packages (so it sees apt's picamera2) holding
#    device/requirements*.txt, on Bookworm pinned by device/constraints-bookworm.txt (Debian's numpy
#    1.x, which picamera2 needs);
# 4. a check that LiteRT loads the default model in that venv;
# 5. /etc/ferlite/ferlite.env (0600; FERLITE_ARGS: what run.py is told, other lines kept on an update)
#    and deploy/ferlite.service filled in as /etc/systemd/system/ferlite.service, then enabled and
#    started (not with --no-start).
# Runs without questions (CI, ssh): every apt-get is -y with DEBIAN_FRONTEND=noninteractive.
# Rerunning it updates the copy, the venv, the env file and the unit, and restarts the service.
set -euo pipefail
# Whatever root's own umask: the copy and the venv must be readable by the service user.
umask 022
ROOT=$(cd "$(dirname "$0")/.." && pwd)

MODE=driver ARGS="" SVC_USER=ferlite PREFIX=/opt/ferlite APT=1 START=1 RENDER=0
UNIT_DIR=${FERLITE_UNIT_DIR:-/etc/systemd/system}   # the environment variables: for tests only
ENV_FILE=${FERLITE_ENV_FILE:-/etc/ferlite/ferlite.env}
# The system Python: the one apt's python3-picamera2 is built for (not a pyenv/conda python3 on PATH).
PY=${PYTHON:-/usr/bin/python3}
LOG_MB=20 LOG_KEEP=5      # the JSONL log: rotated at 20 MB, 5 old files kept (~120 MB at most)
BACKOFF_SYSTEMD=254       # RestartSteps= / RestartMaxDelaySec= exist from this systemd version on

die() { echo "error: $*" >&2; exit "${2:-2}"; }
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case $1 in
    --mode) MODE=${2:?}; shift ;;
    --args) ARGS=${2?}; shift ;;
    --user) SVC_USER=${2:?}; shift ;;
    --prefix) PREFIX=${2:?}; shift ;;
    --no-apt) APT=0 ;;
    --no-start) START=0 ;;
    --render) RENDER=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case $MODE in driver|kiosk) ;; *) die "--mode must be driver or kiosk, not '$MODE'" ;; esac
case $SVC_USER in root|0) die "--user must be an unprivileged user, not root" ;; esac
case "$PREFIX$SVC_USER" in *[[:space:]@\|\&]*) die "--prefix and --user cannot hold spaces, @, | or &" ;; esac

systemd_version() { systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 + 0 }'; }

# deploy/ferlite.service with the @NAMES@ filled in; the back-off lines only where systemd knows them.
render_unit() {
  local version drop=0
  version=$(systemd_version)
  [ "${version:-0}" -ge "$BACKOFF_SYSTEMD" ] || drop=1
  sed -e "s|@USER@|$SVC_USER|g" -e "s|@PREFIX@|$PREFIX|g" -e "s|@ENV_FILE@|$ENV_FILE|g" \
      -e "s|@LOG_MB@|$LOG_MB|g" -e "s|@LOG_KEEP@|$LOG_KEEP|g" "$ROOT/deploy/ferlite.service" |
    if [ $drop = 1 ]; then grep -vE '^(RestartSteps|RestartMaxDelaySec)='; else cat; fi
}

if [ $RENDER = 1 ]; then
  render_unit
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run it as root: sudo $0 $*" 4
[ -r /etc/os-release ] && . /etc/os-release
CODENAME=${VERSION_CODENAME:-unknown}
[ "$(uname -m)" = aarch64 ] || echo "note: this is $(uname -m), not a 64-bit Pi OS (aarch64); installing anyway" >&2

if [ $APT = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed (no network?)" 1
  pkgs=(python3-venv)
  if apt-cache show python3-picamera2 >/dev/null 2>&1; then
    pkgs+=(python3-picamera2)
  else  # plain Debian: only Raspberry Pi OS's archive has it; a USB camera still works (--source 0)
    echo "note: no python3-picamera2 in this system's apt sources (not Raspberry Pi OS?)" >&2
  fi
  echo "== apt: ${pkgs[*]}"
  apt-get install -y -qq "${pkgs[@]}" >/dev/null || die "apt-get install ${pkgs[*]} failed" 1
fi

echo "== user $SVC_USER (group video: the camera)"
if ! id -u "$SVC_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/ferlite --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
fi
getent group video >/dev/null && usermod -a -G video "$SVC_USER"

echo "== $PREFIX/app/device and $PREFIX/deploy: copied from $ROOT"
rm -rf "$PREFIX/app.new"
mkdir -p "$PREFIX/app.new" "$PREFIX/deploy"
cp -R "$ROOT/device" "$PREFIX/app.new/device"
find "$PREFIX/app.new" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$PREFIX/app" && mv "$PREFIX/app.new" "$PREFIX/app"   # the service never sees half a copy
cp "$ROOT/deploy/rotate_log.sh" "$PREFIX/deploy/"

[ -x "$PY" ] || die "no $PY: sudo apt install python3 python3-venv (or set PYTHON=...)" 4
echo "== $PREFIX/venv ($PY, Python $("$PY" -c 'import platform; print(platform.python_version())'), $CODENAME)"
[ -x "$PREFIX/venv/bin/python" ] || "$PY" -m venv --system-site-packages "$PREFIX/venv"
pins=()
[ "$CODENAME" = bookworm ] && pins=(-c "$ROOT/device/constraints-bookworm.txt")
"$PREFIX/venv/bin/python" -m pip install -q --disable-pip-version-check \
  -r "$ROOT/device/requirements.txt" -r "$ROOT/device/requirements-mqtt.txt" "${pins[@]}"

# The service cannot write __pycache__ (ProtectSystem=strict): compiled once here, not at every start.
"$PREFIX/venv/bin/python" -m compileall -q "$PREFIX/app" >/dev/null

echo "== check: LiteRT loads the default model"
"$PREFIX/venv/bin/python" -c "
import sys; sys.path.insert(0, '$PREFIX/app')
from device.stderr import quiet_native_stderr
from device.interpreter import TFLiteClassifier
from device.run import DEFAULT_MODEL
with quiet_native_stderr():
    clf = TFLiteClassifier(DEFAULT_MODEL, threads=1)
print('   ', DEFAULT_MODEL.name, 'int8' if clf.quantized else 'float', clf.labels)"
"$PREFIX/venv/bin/python" -c "import picamera2" 2>/dev/null \
  || echo "note: picamera2 does not import in $PREFIX/venv: --source picamera2 will stop with exit 4 (sudo apt install python3-picamera2)" >&2

echo "== $ENV_FILE and $UNIT_DIR/ferlite.service"
mkdir -p "$(dirname "$ENV_FILE")" "$UNIT_DIR"
# An update keeps the lines a user added (FERLITE_MQTT_PASSWORD=...): only FERLITE_ARGS is rewritten.
kept=$( { grep -vE '^[[:space:]]*(#|$|FERLITE_ARGS=)' "$ENV_FILE" 2>/dev/null || true; } )
( umask 077  # 0600: it may hold the MQTT password; systemd reads it as root
  cat > "$ENV_FILE.new" <<EOF
# What device/run.py is told by the ferlite service (besides --source picamera2 and the log).
# Flags as on the command line, separated by spaces: python device/run.py --help lists them.
# Other lines are kept by install_pi.sh, e.g. FERLITE_MQTT_USERNAME=... and FERLITE_MQTT_PASSWORD=...
# After a change: sudo systemctl restart ferlite
FERLITE_ARGS="--mode $MODE${ARGS:+ $ARGS}"
EOF
  [ -z "$kept" ] || printf '%s\n' "$kept" >> "$ENV_FILE.new" )
mv -f "$ENV_FILE.new" "$ENV_FILE"
render_unit > "$UNIT_DIR/ferlite.service"

if [ $START = 1 ]; then
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable ferlite.service
    systemctl restart ferlite.service
    echo "started: systemctl status ferlite; journalctl -u ferlite -f; log in /var/log/ferlite/ferlite.jsonl"
  else
    echo "note: systemd is not running here; start it later with: systemctl enable --now ferlite" >&2
  fi
fi
# What the runtime's messages tell a user to run ("python device/run.py ...") runs from the copy:
echo "the installed copy: cd $PREFIX/app && sudo $PREFIX/venv/bin/python device/run.py --help"
echo "done"
