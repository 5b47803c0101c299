"""The Pi service: deploy/ferlite.service (filled in by scripts/install_pi.sh) and deploy/rotate_log.sh.

No systemd runs here, so the unit is checked three ways: its settings parsed, the filled-in unit
through ``systemd-analyze verify`` (where installed), and its ExecStartPre + ExecStart run as
systemd would run them, against the picamera2 stand-in (a camera lost mid-run, then back).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.errors import EXIT_ENV, EXIT_FAILED, EXIT_INPUT, EXIT_USAGE
from timing import patient  # noqa: E402  (hang guards, stretched under emulation)
from unit_file import one, parse_unit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "ferlite.service"
INSTALL = ROOT / "scripts" / "install_pi.sh"
ROTATE = ROOT / "deploy" / "rotate_log.sh"


def render(prefix: Path, env_file: Path, *args: str) -> str:
    p = subprocess.run(["bash", str(INSTALL), "--render", "--prefix", str(prefix), *args], capture_output=True,
                       text=True, timeout=patient(30), env={**os.environ, "FERLITE_ENV_FILE": str(env_file)})
    assert p.returncode == 0 and not p.stderr, p.stderr
    return p.stdout


def systemd_version() -> int:
    if not shutil.which("systemctl"):
        return 0
    out = subprocess.run(["systemctl", "--version"], capture_output=True, text=True).stdout.split()
    return int(out[1]) if len(out) > 1 and out[1].isdigit() else 0


@pytest.fixture
def installed(tmp_path) -> dict:
    """A prefix laid out as install_pi.sh lays it out, its venv being this Python, its app this checkout."""
    prefix = tmp_path / "opt"
    (prefix / "venv" / "bin").mkdir(parents=True)
    python = prefix / "venv" / "bin" / "python"  # not a symlink: a venv's python finds its venv by its own path
    python.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    python.chmod(0o755)
    (prefix / "app").mkdir()
    (prefix / "app" / "device").symlink_to(ROOT / "device")
    (prefix / "deploy").mkdir()
    shutil.copy(ROTATE, prefix / "deploy" / "rotate_log.sh")
    env_file = tmp_path / "ferlite.env"
    env_file.write_text('FERLITE_ARGS="--mode driver"\n')
    text = render(prefix, env_file)
    unit_file = tmp_path / "ferlite.service"
    unit_file.write_text(text)
    return {"prefix": prefix, "env_file": env_file, "text": text, "unit": parse_unit(text), "file": unit_file}


def test_unit_template_runs_unprivileged_restarts_with_backoff_and_logs():
    unit = parse_unit(TEMPLATE.read_text())
    svc = unit["Service"]
    assert one(unit, "Service", "User") == "@USER@" and one(unit, "Service", "Group") == "@USER@"
    assert "video" in one(unit, "Service", "SupplementaryGroups").split()  # the camera's device files
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    # Restart on a failure (the camera stopped: 1, could not be opened: 3), not on what a restart cannot fix
    assert one(unit, "Service", "Restart") == "on-failure"
    prevent = {int(v) for v in one(unit, "Service", "RestartPreventExitStatus").split()}
    assert prevent == {EXIT_USAGE, EXIT_ENV} and not prevent & {EXIT_FAILED, EXIT_INPUT}
    assert one(unit, "Unit", "StartLimitIntervalSec") == "0"  # never gives up
    assert one(unit, "Service", "RestartSec") == "5s"
    assert int(one(unit, "Service", "RestartSteps")) > 1 and one(unit, "Service", "RestartMaxDelaySec") == "5min"
    # JSONL to a rotating file under LogsDirectory, moved aside before each start; stderr to the journal
    start = shlex.split(one(unit, "Service", "ExecStart"))
    assert start[:4] == ["@PREFIX@/venv/bin/python", "@PREFIX@/app/device/run.py", "--source", "picamera2"]
    log = start[start.index("--log") + 1]
    assert one(unit, "Service", "LogsDirectory") == "ferlite" and log == "%L/ferlite/ferlite.jsonl"
    assert start[start.index("--log-max-mb") + 1] == "@LOG_MB@" and start[-1] == "$FERLITE_ARGS"
    pre = shlex.split(one(unit, "Service", "ExecStartPre"))
    assert pre == ["/bin/sh", "@PREFIX@/deploy/rotate_log.sh", log, "@LOG_KEEP@"]
    assert start[start.index("--log-keep") + 1] == "@LOG_KEEP@"
    assert one(unit, "Service", "StandardError") == "journal"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    assert "Type" in svc and one(unit, "Service", "Type") == "exec"


def test_filled_in_unit_is_complete_and_verifies(installed):
    text, unit = installed["text"], installed["unit"]
    assert not re.findall(r"@[A-Z_]+@", text)  # every placeholder filled in
    assert one(unit, "Service", "User") == "ferlite"
    assert one(unit, "Service", "EnvironmentFile") == str(installed["env_file"])
    start = shlex.split(one(unit, "Service", "ExecStart"))
    assert start[start.index("--log-max-mb") + 1] == "20" and start[start.index("--log-keep") + 1] == "5"
    backoff = {"RestartSteps", "RestartMaxDelaySec"} <= set(unit["Service"])
    assert backoff == (systemd_version() >= 254)  # older systemd would warn about keys it does not know
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    p = subprocess.run(["systemd-analyze", "verify", str(installed["file"])], capture_output=True, text=True,
                       timeout=patient(60))
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr  # verify exits 0 on warnings: none allowed


@pytest.mark.parametrize("args, message", [
    (["--mode", "bored"], "error: --mode must be driver or kiosk, not 'bored'"),
    (["--user", "root"], "error: --user must be an unprivileged user, not root"),
    (["--frobnicate"], "error: unknown option --frobnicate (see --help)"),
])
def test_install_refuses_bad_options_before_doing_anything(args, message, tmp_path):
    p = subprocess.run(["bash", str(INSTALL), "--prefix", str(tmp_path / "opt"), *args], capture_output=True,
                       text=True, timeout=patient(30))
    assert (p.returncode, p.stderr) == (EXIT_USAGE, message + "\n")
    assert not (tmp_path / "opt").exists()


def test_rotate_log_keeps_the_last_runs(tmp_path):
    log = tmp_path / "ferlite.jsonl"

    def rotate(keep=3):
        subprocess.run(["/bin/sh", str(ROTATE), str(log), str(keep)], check=True, timeout=patient(10))
    rotate()  # no log yet: nothing to do
    assert list(tmp_path.iterdir()) == []
    log.write_text("")
    rotate()  # an empty log (a run that wrote nothing) is not kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ferlite.jsonl"]
    for run in range(1, 6):
        log.write_text(f"run {run}\n")
        rotate()
    assert not log.exists()
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "ferlite.jsonl.1": "run 5\n", "ferlite.jsonl.2": "run 4\n", "ferlite.jsonl.3": "run 3\n"}
    log.write_text("run 6\n")
    rotate(keep=0)
    assert not log.exists()


STAND_IN = '''\
"""The picamera2 stand-in of tests/device/test_device_picamera2.py, importable by a run.py process."""
import os, sys
import cv2
sys.path.insert(0, {tests!r})
from test_device_picamera2 import make_fake_module
_cap = cv2.VideoCapture({clip!r})
_frames = [_cap.read()[1] for _ in range(20)]
_cap.release()
_fail = os.environ.get("STAND_IN_FAIL_AFTER")
Picamera2 = make_fake_module(_frames, fail_after=int(_fail) if _fail else None).Picamera2
'''


def service_commands(installed, logs: Path) -> tuple[list[str], list[str]]:
    """ExecStartPre and ExecStart as systemd runs them: %L expanded, $FERLITE_ARGS split into words."""
    unit = installed["unit"]
    env_line = installed["env_file"].read_text().strip()
    args = shlex.split(env_line.partition("=")[2])[0].split()

    def expand(cmd: str) -> list[str]:
        words = shlex.split(cmd.replace("%L", str(logs)))
        return [w for word in words for w in (args if word == "$FERLITE_ARGS" else [word])]
    return expand(one(unit, "Service", "ExecStartPre")), expand(one(unit, "Service", "ExecStart"))


def test_service_camera_lost_then_restarted(installed, tmp_path, faces_dir):
    """The unit's own commands, run as systemd runs them: the camera dies mid-run -> exit 1 (a restart
    code), one error line for the journal, the JSONL summary says why; the restart moves that log to
    ferlite.jsonl.1 and, the camera back, runs."""
    stand_in = tmp_path / "stand_in"
    stand_in.mkdir()
    (stand_in / "picamera2.py").write_text(STAND_IN.format(tests=str(Path(__file__).parent),
                                                           clip=str(faces_dir / "fer_test.mp4")))
    logs = tmp_path / "log"
    (logs / "ferlite").mkdir(parents=True)  # LogsDirectory=ferlite
    pre, start = service_commands(installed, logs)
    env = {**os.environ, "PYTHONPATH": str(stand_in), "STAND_IN_FAIL_AFTER": "6"}

    def run(cmd, env):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=patient(180), env=env, cwd=tmp_path)
    assert run(pre, env).returncode == 0
    first = run(start, env)
    why = "picamera2:0: frame capture failed 6 times in a row (TimeoutError: camera frontend has timed out)"
    assert first.returncode == EXIT_FAILED, first.stderr
    assert first.stderr == f"error: {why}\n"
    restart = first.returncode not in {int(v) for v in one(installed["unit"], "Service",
                                                            "RestartPreventExitStatus").split()}
    assert restart  # Restart=on-failure: systemd starts it again

    installed["env_file"].write_text('FERLITE_ARGS="--mode driver --max-frames 4"\n')
    pre, start = service_commands(installed, logs)
    env.pop("STAND_IN_FAIL_AFTER")  # the camera is back
    assert run(pre, env).returncode == 0
    second = run(start, env)
    assert second.returncode == 0, second.stderr
    log = logs / "ferlite" / "ferlite.jsonl"
    failed = [json.loads(x) for x in (log.parent / "ferlite.jsonl.1").read_text().splitlines()]
    assert failed[0]["type"] == "start" and failed[0]["mode"] == "driver"
    assert failed[-1]["status"] == "error" and failed[-1]["error"] == why and failed[-1]["frames"] == 6
    ran = [json.loads(x) for x in log.read_text().splitlines()]
    assert ran[-1]["status"] == "max_frames" and ran[-1]["frames"] == 4
