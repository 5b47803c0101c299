#!/usr/bin/env bash
# The device runtime on aarch64, as on a Raspberry Pi, under emulation (qemu-user), compared with x86.
#
#   scripts/release/check_aarch64.sh [--tests-only | --compare-only] [--before REV] [TARGET ...]
#
# TARGETs (default: all four, in this order):
#   bookworm      Raspberry Pi OS Bookworm's Debian 12, Python 3.11, device/requirements.txt as pip
#                 resolves it (numpy 2, OpenCV 4.12+), QEMU_CPU=cortex-a72 (Pi 4)
#   bookworm-pi   the same with device/constraints-bookworm.txt (numpy 1.26, OpenCV 4.11): what the
#                 README tells Pi OS Bookworm users to install
#   bookworm-pi3  bookworm-pi on QEMU_CPU=cortex-a53 (Pi 3, Zero 2 W: ARMv8.0, no dot product)
#   trixie        Debian 13, Python 3.13, QEMU_CPU=cortex-a76 (Pi 5)
# For each: the device tests under emulation (tests/device, less EMULATION_LEAVES_OUT), then
# scripts/release/arch_drift.py on x86 and on aarch64 and its table (classifier agreement, faces found, box
# IoU, label agreement; docs/AARCH64.md). --before REV adds the same table for an older commit.
#
# Needs root once (apt-get install qemu-user-static; binfmt_misc registered so that tests which start
# sys.executable again run under qemu too) and network to Debian's archive and PyPI. Everything else
# lives in .cache/aarch64 (FERLITE_AARCH64_CACHE): Debian's arm64 python packages unpacked with
# dpkg -x (the host's dpkg is never touched) into one root per release and CPU, one venv per target,
# filled by the host's pip with aarch64 wheels, and pip's cache; a second run reuses them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CACHE=${FERLITE_AARCH64_CACHE:-$REPO/.cache/aarch64}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export PIP_CACHE_DIR=$CACHE/pip PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# One place for the targets (the header above describes them) and for what each one is.
ALL_TARGETS=(bookworm bookworm-pi bookworm-pi3 trixie)
release() { case $1 in trixie) echo trixie ;; *) echo bookworm ;; esac; }
pyver() { case $1 in trixie) echo 3.13 ;; *) echo 3.11 ;; esac; }
cpu() { case $1 in trixie) echo cortex-a76 ;; bookworm-pi3) echo cortex-a53 ;; *) echo cortex-a72 ;; esac; }
glibc_minor() { case $1 in trixie) echo 41 ;; *) echo 36 ;; esac; }  # newest manylinux_2_N the root's glibc runs
constraints() { case $1 in bookworm-pi|bookworm-pi3) echo device/constraints-bookworm.txt ;; esac; }
x86_venv() { case $1 in bookworm-pi|bookworm-pi3) echo .venv-bookworm ;; *) echo .venv-device ;; esac; }  # same pins, on x86
x86_venv_pins() { constraints "$1"; }
sysroot() { echo "$CACHE/$(release "$1")/sysroot-$(cpu "$1")"; }  # one per release and CPU: its /proc/cpuinfo

RUN_TESTS=1 RUN_COMPARE=1 BEFORE="" TARGETS=()
while [ $# -gt 0 ]; do
  case $1 in
    --tests-only) RUN_COMPARE=0 ;;
    --compare-only) RUN_TESTS=0 ;;
    --before) BEFORE=${2:?}; shift ;;
    -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [[ " ${ALL_TARGETS[*]} " == *" $1 "* ]] || { echo "error: unknown target '$1' (one of: ${ALL_TARGETS[*]})" >&2; exit 2; }
       TARGETS+=("$1") ;;
  esac
  shift
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

say() { echo "== $*" >&2; }
machine_line() {  # what docs/AARCH64.md puts beside each table: CPU, cores, OS, date (no host name)
  local cpu os
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
  echo "$(uname -m) ${cpu:-unknown CPU} ($(nproc --all) cores$([ "$(nproc)" = "$(nproc --all)" ] || echo ", $(nproc) usable by this script")), ${os:-$(uname -s)}, qemu $(qemu-aarch64-static --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'), $(date -u +%Y-%m-%d)"
}
die() { echo "error: $*" >&2; exit "${2:-1}"; }

# -- the host: qemu-user-static and binfmt_misc -------------------------------------------------------
ensure_qemu() {
  if ! command -v qemu-aarch64-static >/dev/null; then
    [ "$(id -u)" = 0 ] || die "qemu-user-static is missing: run once as root (apt-get install -y qemu-user-static)" 4
    say "apt-get install qemu-user-static"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
  fi
  local fs=/proc/sys/fs/binfmt_misc
  if [ ! -e $fs/register ]; then
    mount -t binfmt_misc binfmt_misc $fs 2>/dev/null || die "cannot mount $fs (needs root, and a container allowed to)" 4
  fi
  if [ ! -e $fs/qemu-aarch64 ]; then
    [ -w $fs/register ] || die "qemu-aarch64 is not registered in $fs and this user cannot register it" 4
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > $fs/register
  fi
}

# -- an arm64 Debian root holding just python3.X (dpkg -x, the host's dpkg untouched) --------------------
apt_opts() {  # apt-get/apt-cache options for an arm64 view of $1's archive, all state under $2
  echo "-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Dir::State::Lists=$2/lists"\
       "-o Dir::Cache=$2/apt -o Dir::State::status=/dev/null -o Dir::Etc::SourceList=$2/sources.list"\
       "-o Dir::Etc::SourceParts=/dev/null -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null"\
       "-o APT::Sandbox::User=root -o Debug::NoLocking=1"
}

fetch_debs() {  # $1 release, $2 python version -> $CACHE/$1/debs: python3.X and what it needs, for arm64
  local rel=$1 py=python$2 d=$CACHE/$1 opts pkgs
  [ -e "$d/debs/.complete" ] && return
  say "arm64 $py from Debian $rel into $d/debs"
  rm -rf "$d/lists" "$d/apt" "$d/debs" && mkdir -p "$d/lists/partial" "$d/apt/archives/partial" "$d/debs"
  echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $rel main" \
    > "$d/sources.list"
  opts=$(apt_opts "$rel" "$d")
  # shellcheck disable=SC2086
  apt-get $opts update -qq
  # Everything python3.X needs, less what only a booted system does (dpkg, perl, tar, install-info).
  # shellcheck disable=SC2086
  pkgs=$(apt-cache $opts depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances "$py" libstdc++6 libgomp1 |
         grep -v '^[ <]' | grep -vE '^(perl.*|libperl.*|dpkg|tar|install-info)$' | sort -u)
  # shellcheck disable=SC2086
  (cd "$d/debs" && apt-get $opts download -qq $pkgs)
  touch "$d/debs/.complete"
}

build_root() {  # $1 target -> $(sysroot $1): the release's debs unpacked, and a /proc/cpuinfo for its CPU
  local r
  r=$(sysroot "$1")
  [ -e "$r/.complete" ] && return
  fetch_debs "$(release "$1")" "$(pyver "$1")"
  say "$(cpu "$1") root $r"
  rm -rf "$r" && mkdir -p "$r"
  for deb in "$(dirname "$r")"/debs/*.deb; do dpkg -x "$deb" "$r"; done
  [ -e "$r/lib" ] || ln -s usr/lib "$r/lib"  # Trixie ships /usr/lib only; the loader is /lib/ld-linux-aarch64.so.1
  write_cpuinfo "$r" "$(cpu "$1")"
  touch "$r/.complete"
}

# qemu-user shows the host's x86 /proc/cpuinfo; LiteRT's CPU detection then crashes (SIGSEGV) in
# Interpreter(). qemu reads QEMU_LD_PREFIX/proc/cpuinfo instead when it exists: a Pi's, matching
# QEMU_CPU (a mismatch: SIGILL). The Model line says that it is emulated, so no report can mistake it.
write_cpuinfo() {  # $1 root, $2 cortex-a53 | cortex-a72 | cortex-a76
  local part features variant revision board bogomips=108.00  # BogoMIPS: twice the timer's MHz (Pi 4 and 5: 54)
  case $2 in
    cortex-a53) part=0xd03 variant=0x0 revision=4 board="Raspberry Pi 3 Model B Plus or Zero 2 W" bogomips=38.40
                features="fp asimd evtstrm crc32 cpuid" ;;
    cortex-a72) part=0xd08 variant=0x0 revision=3 board="Raspberry Pi 4" features="fp asimd evtstrm crc32 cpuid" ;;
    cortex-a76) part=0xd0b variant=0x4 revision=1 board="Raspberry Pi 5"
                features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  esac
  mkdir -p "$1/proc"
  for i in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: %s\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
      "$i" "$bogomips" "$features" "$variant" "$part" "$revision"
  done > "$1/proc/cpuinfo"
  printf 'Model\t\t: qemu-user %s (an emulated %s, not one)\n' "$2" "$board" >> "$1/proc/cpuinfo"
}

# -- a venv per target, filled by the host's pip with aarch64 wheels -------------------------------------
platform_tags() {
  local m tags="--platform manylinux2014_aarch64"
  for m in $(seq 17 "$(glibc_minor "$1")"); do tags="$tags --platform manylinux_2_${m}_aarch64"; done
  echo "$tags"
}

build_venv() {  # $1 target -> $CACHE/venv-$1
  local t=$1 v=$CACHE/venv-$1 py=python$(pyver "$1") root stamp c
  root=$(sysroot "$t") c=$(constraints "$t")
  stamp=$( (cat device/requirements.txt device/requirements-mqtt.txt ${c:+"$c"}; echo "$root") | sha256sum | cut -c1-16)
  [ "$(cat "$v/.stamp" 2>/dev/null)" = "$stamp" ] && return
  say "venv $v (aarch64 wheels${c:+, -c $c})"
  rm -rf "$v"
  QEMU_LD_PREFIX=$root QEMU_CPU=$(cpu "$t") "$root/usr/bin/$py" -m venv --without-pip "$v"
  # shellcheck disable=SC2046
  "$HOST_PY" -m pip install -q --target "$v/lib/$py/site-packages" $(platform_tags "$t") \
    --python-version "$(pyver "$t")" --implementation cp --only-binary=:all: \
    -r device/requirements.txt -r device/requirements-mqtt.txt "pytest>=8" ${c:+-c "$c"}
  echo "$stamp" > "$v/.stamp"
}

# -- running things under emulation ------------------------------------------------------------------------
on_arm() {  # $1 target, then the command (its python is the target's venv)
  local t=$1
  shift
  QEMU_LD_PREFIX=$(sysroot "$t") QEMU_CPU=$(cpu "$t") "$@"
}

# Left out under emulation: each runs device/run.py over 115-600 clip frames (or a real MQTT broker) in a
# subprocess with a 60-300 s timeout, which emulated speed on a busy 2-core host outlasts (0.3-2 fps).
# What they test is log writing under faults, --loop and MQTT: the OS and pure Python, which the x86
# suites (scripts/test.sh: .venv, .venv-device, .venv-bookworm) run; the whole loop on aarch64 is
# arch_drift.py's "whole loop" row. test_clip_plays_at_the_limit checks that --max-fps 20 plays a clip at
# 15-20 fps: a real-time rate the emulated loop (1-2 fps) cannot reach; the pacing itself is pure Python.
EMULATION_LEAVES_OUT=(
  --deselect=tests/device/test_pace.py::test_clip_plays_at_the_limit
  --ignore=tests/device/test_telemetry.py
  --deselect=tests/device/test_reliability_log.py::test_named_pipe_reader_goes_away
  --deselect=tests/device/test_reliability_log.py::test_deleted_during_a_run
  --deselect=tests/device/test_reliability_log.py::test_rotation_keeps_k_files
  --deselect=tests/device/test_reliability_sources.py::test_cli_loop
)

run_tests() {  # $1 target; pytest's last line -> $CACHE/tests-$1.txt (the summary table)
  say "$1: tests/device under emulation, less EMULATION_LEAVES_OUT (too long at emulated speed)"
  # The tests' hang guards (child-process timeouts, tests/device/timing.py) stretch by this factor: under
  # qemu a child Python starts and runs 10-20x slower, more beside other work.
  FERLITE_TEST_TIMEOUT_SCALE=${FERLITE_TEST_TIMEOUT_SCALE:-10} \
    on_arm "$1" "$CACHE/venv-$1/bin/python" -m pytest -q -p no:cacheprovider --durations=5 tests/device \
    "${EMULATION_LEAVES_OUT[@]}" | tee "$CACHE/tests-$1.out"
  local rc=${PIPESTATUS[0]}  # pytest's status, not tee's
  tail -1 "$CACHE/tests-$1.out" | sed 's/^=* *//; s/ *=*$//' > "$CACHE/tests-$1.txt"
  return $rc
}

tree_of() {  # $1 "" (this checkout) or a git revision -> a directory holding its device/
  if [ -z "$1" ]; then echo "$REPO"; return; fi
  local d=$CACHE/tree-$(git rev-parse --short "$1")
  if [ ! -d "$d/device" ]; then
    mkdir -p "$d" && git archive "$1" device | tar -x -C "$d"
  fi
  echo "$d"
}

compare_target() {  # $1 target, $2 revision ("" = this checkout)
  local t=$1 rev=$2 tree out x86
  tree=$(tree_of "$rev")
  out=$CACHE/drift/$t${rev:+-$(git rev-parse --short "$rev")}
  x86=$(x86_venv "$t")
  mkdir -p "$out"
  [ -x "$x86/bin/python" ] || scripts/setup_venv.sh "$x86" device $(x86_venv_pins "$t")
  say "$t: scripts/release/arch_drift.py on x86 ($x86) and under emulation, device/ of ${rev:-this checkout}"
  "$x86/bin/python" scripts/release/arch_drift.py probe "$out/x86.json" --tree "$tree" \
    --write-frames "$out/frames-x86"
  on_arm "$t" "$CACHE/venv-$t/bin/python" scripts/release/arch_drift.py probe "$out/arm.json" --tree "$tree" \
    --read-frames "$out/frames-x86"
  "$x86/bin/python" scripts/release/arch_drift.py compare "$out/x86.json" "$out/arm.json" \
    --title "$t, device/ of ${rev:-this checkout ($(git rev-parse --short HEAD))}" > "$out/table.md"
  local rc=$?
  cat "$out/table.md"
  return $rc
}

HOST_PY=${PYTHON:-python3}
ensure_qemu
say "machine: $(machine_line)"
status=0 summary=()
for t in "${TARGETS[@]}"; do
  start=$SECONDS
  build_root "$t"
  build_venv "$t"
  times="set-up $((SECONDS - start)) s"
  tests="-"
  if [ $RUN_TESTS = 1 ]; then
    t0=$SECONDS
    run_tests "$t" || status=1
    times="$times, tests $((SECONDS - t0)) s"
    tests=$(cat "$CACHE/tests-$t.txt")
  fi
  if [ $RUN_COMPARE = 1 ]; then
    if [ -n "$BEFORE" ]; then  # the older commit's drift is what the table shows; it may well be out of tolerance
      t0=$SECONDS
      compare_target "$t" "$BEFORE" || true
      times="$times, compare $BEFORE $((SECONDS - t0)) s"
    fi
    t0=$SECONDS
    compare_target "$t" "" || status=1
    times="$times, compare $((SECONDS - t0)) s"
  fi
  say "$t: $((SECONDS - start)) s ($times)"
  summary+=("| \`$t\` | $tests | $times | $((SECONDS - start)) s |")
done
echo
echo "**scripts/release/check_aarch64.sh ${TARGETS[*]}**: $(machine_line)"
echo
echo "| target | tests/device under emulation (pytest) | stages | total |"
echo "| --- | --- | --- | ---: |"
printf '%s\n' "${summary[@]}"
echo
[ $status = 0 ] && say "passed: ${TARGETS[*]}" || say "FAILED (see above): ${TARGETS[*]}"
exit $status
