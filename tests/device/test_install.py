"""scripts/install_pi.sh as a new user runs it, then again as an update, each time followed by the service.

The installer runs for real (as root, no apt, not started): a new system user, the copy of device/, a
venv of the system Python filled by pip, the LiteRT check, the env file and the unit, all in a scratch
folder. No systemd runs here (a container: it is not PID 1), so the installed copy is started as the
rendered unit says systemd would: its ExecStartPre and ExecStart, as its user with group video, its
UMask, its WorkingDirectory and Environment, the env file's flags; only ``--source picamera2`` becomes
the real clip. The JSONL it writes is read back. Once more under seccomp filters built from the unit's
SystemCallFilter=, RestrictAddressFamilies= and MemoryDenyWriteExecute= (seccomp_exec.py), which
systemd would install. Needs root (CI runs as root), pip's index, systemd-analyze and python3-seccomp.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from timing import TIMEOUT_SCALE, patient  # noqa: E402
from unit_file import expand, one, parse_unit, read_env_file  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INSTALL = ROOT / "scripts" / "install_pi.sh"
SYSTEM_PYTHON = Path("/usr/bin/python3")  # what install_pi.sh builds the venv from

pytestmark = pytest.mark.slow


def require(ok: bool, why: str) -> None:
    """As tests/conftest.py does with missing data: CI fails loudly, elsewhere the test skips."""
    if not ok:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


@pytest.fixture(scope="module")
def scratch():
    """A folder the service user can enter (pytest's own tmp folders are root's alone, mode 0700) and a
    user name of its own, so that two runs never share (or delete) one user."""
    require(os.geteuid() == 0, "install_pi.sh needs root (CI runs as root)")
    require(shutil.which("useradd") is not None and SYSTEM_PYTHON.is_file(), "needs useradd and /usr/bin/python3")
    if TIMEOUT_SCALE != 1:
        pytest.skip("under emulation: the installer would build the host's venv, which the x86 suites test")
    folder = Path(tempfile.mkdtemp(prefix="ferlite-install-"))
    folder.chmod(0o755)
    user = f"ferlite-t{os.getpid()}"
    try:
        yield folder, user
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(["userdel", user], capture_output=True)  # made by install_pi.sh, with its group


@pytest.fixture(scope="module")
def installed(scratch, faces_dir):
    """The first install, as a new user runs it (driver mode), and the clip where the service user reads it."""
    folder, user = scratch
    shutil.copy(faces_dir / "fer_test.mp4", folder / "clip.mp4")
    (folder / "clip.mp4").chmod(0o644)
    install(folder, user, "--mode", "driver", "--args", "--max-frames 12")
    return folder, user


def install(folder: Path, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(FERLITE_UNIT_DIR=str(folder / "units"), FERLITE_ENV_FILE=str(folder / "etc" / "ferlite.env"))
    # umask 077: root's own umask must not leave the copy unreadable to the service user
    p = subprocess.run(["bash", str(INSTALL), "--no-apt", "--no-start", "--prefix", str(folder / "opt"),
                        "--user", user, *args], capture_output=True, text=True, env=env, umask=0o077,
                       stdin=subprocess.DEVNULL, timeout=patient(300))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "error" not in p.stderr.lower(), p.stderr
    return p


def start_service(folder: Path, user: str, clip: Path, sandbox: bool = False
                  ) -> tuple[subprocess.CompletedProcess, Path]:
    """What systemd does with the unit: make StateDirectory and LogsDirectory, run ExecStartPre and
    ExecStart as User= with SupplementaryGroups=, UMask=, WorkingDirectory=, Environment= and
    EnvironmentFile=; ``sandbox``: under seccomp filters like its SystemCallFilter=,
    RestrictAddressFamilies= and MemoryDenyWriteExecute= (seccomp_exec.py). -> ExecStart's result and
    LogsDirectory."""
    unit = parse_unit((folder / "units" / "ferlite.service").read_text())
    svc = unit["Service"]
    state, logs = folder / "state", folder / "log"
    specifiers = {"%S": str(state), "%L": str(logs)}
    assert one(unit, "Service", "User") == user and one(unit, "Service", "Group") == user
    for root, key in ((state, "StateDirectory"), (logs, "LogsDirectory")):
        made = root / one(unit, "Service", key)
        made.mkdir(parents=True, exist_ok=True)
        shutil.chown(made, user, user)
        made.chmod(int(svc.get(key + "Mode", ["0755"])[0], 8))
    account = pwd.getpwnam(user)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "USER": user, "LOGNAME": user, "HOME": account.pw_dir, "SHELL": account.pw_shell}
    for line in svc.get("Environment", []):
        env.update(w.split("=", 1) for w in expand(line, specifiers, {}))
    env_file = Path(one(unit, "Service", "EnvironmentFile"))
    env.update(read_env_file(env_file))
    run_as = dict(user=user, group=user, extra_groups=one(unit, "Service", "SupplementaryGroups").split(),
                  umask=int(svc.get("UMask", ["0022"])[0], 8), env=env, capture_output=True, text=True,
                  cwd=expand(one(unit, "Service", "WorkingDirectory"), specifiers, {})[0],
                  stdin=subprocess.DEVNULL, timeout=patient(180))
    pre = subprocess.run(expand(one(unit, "Service", "ExecStartPre"), specifiers, env), **run_as)
    assert pre.returncode == 0, pre.stderr
    start = expand(one(unit, "Service", "ExecStart"), specifiers, env)
    i = start.index("--source")
    assert start[i + 1] == "picamera2"  # no camera here: the clip instead
    start[i + 1] = str(clip)
    if sandbox:
        start = sandbox_command(unit, folder) + start
    return subprocess.run(start, **run_as), logs / one(unit, "Service", "LogsDirectory")


def syscalls(names: list[str]) -> set[str]:
    """SystemCallFilter='s names with its @sets expanded, as systemd-analyze lists them."""
    found = set()
    for name in names:
        if not name.startswith("@"):
            found.add(name)
            continue
        listed = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                                check=True, timeout=patient(30)).stdout.splitlines()[1:]
        found |= syscalls([ln.split()[0] for ln in listed if ln.strip() and not ln.strip().startswith("#")])
    return found


def sandbox_command(unit, folder: Path) -> list[str]:
    """seccomp_exec.py's command line for the unit's filters: the first SystemCallFilter= line is the
    allow-list, each ~ line takes calls out of it."""
    svc = unit["Service"]
    allowed: set[str] = set()
    for line in svc["SystemCallFilter"]:
        names = syscalls(line.lstrip("~").split())
        allowed = allowed - names if line.startswith("~") else allowed | names
    (folder / "syscalls.txt").write_text("\n".join(sorted(allowed)) + "\n")
    shutil.copy(HERE / "seccomp_exec.py", folder)  # where the service user can read it
    families = ",".join(one(unit, "Service", "RestrictAddressFamilies").split())
    mdwe = "1" if svc.get("MemoryDenyWriteExecute") == ["yes"] else "0"
    return [str(folder / "opt" / "venv" / "bin" / "python"), str(folder / "seccomp_exec.py"),
            str(folder / "syscalls.txt"), families, mdwe, "--"]


def read_log(path: Path, user: str) -> list[dict]:
    st = path.stat()
    assert pwd.getpwuid(st.st_uid).pw_name == user
    assert stat.S_IMODE(st.st_mode) & 0o037 == 0, oct(st.st_mode)  # 0640 or tighter: not world-readable
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_run(result: subprocess.CompletedProcess, log: Path, user: str, mode: str, frames: int) -> None:
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    records = read_log(log, user)
    assert records[0]["type"] == "start" and records[0]["mode"] == mode
    summary = records[-1]
    assert summary["type"] == "summary" and summary["status"] == "max_frames", summary
    assert summary["frames"] == frames and summary["faces"] > 0  # the clip's face, found and classified


def commands_named(text: str) -> list[tuple[str, ...]]:
    """The commands a message tells the user to run: ``python X.py [SUB]`` or ``python -m MODULE [SUB]``."""
    text = " ".join(text.split())  # --help wraps lines
    found = re.findall(r"\bpython3? (-m [\w.]+|[\w/.-]+\.py)(?: ([a-z][a-z]*-[a-z-]+|[a-z]+(?= ?-)))?", text)
    return sorted({tuple(t.split()) + ((sub,) if sub else ()) for t, sub in found})


def check_named_commands_run(prefix: Path) -> None:
    """Everything the installed copy tells a user to run (its --help, the BlazeFace hint) is on the Pi too:
    each command, run from the installed app folder with the installed venv, answers --help."""
    python, app = str(prefix / "venv" / "bin" / "python"), prefix / "app"
    helped = subprocess.run([python, "device/run.py", "--help"], capture_output=True, text=True, cwd=app,
                            timeout=patient(60))
    assert helped.returncode == 0, helped.stderr
    hint = subprocess.run([python, "-c", "from device.detect import FETCH_HINT; print(FETCH_HINT)"],
                          capture_output=True, text=True, cwd=app, timeout=patient(60))
    assert hint.returncode == 0, hint.stderr
    commands = commands_named(helped.stdout + "\n" + hint.stdout)
    assert commands, "no command found in run.py --help and the BlazeFace hint"
    for command in commands:
        p = subprocess.run([python, *command, "--help"], capture_output=True, text=True, cwd=app,
                           timeout=patient(60))
        assert p.returncode == 0, f"the installed copy names 'python {' '.join(command)}': {p.stderr}"


def test_install_then_update_then_the_service_runs(installed):
    folder, user = installed
    clip, prefix, env_file = folder / "clip.mp4", folder / "opt", folder / "etc" / "ferlite.env"
    assert pwd.getpwnam(user).pw_shell.endswith("nologin")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it may hold the MQTT password
    check_named_commands_run(prefix)
    result, logs = start_service(folder, user, clip)
    check_run(result, logs / "ferlite.jsonl", user, "driver", 12)

    # The update in place: a new copy (nothing left of the old one), the venv kept, the user's own
    # lines in the env file kept while FERLITE_ARGS follows the new options.
    (prefix / "app" / "device" / "stale.py").write_text("")
    (prefix / "venv" / "kept").write_text("")
    with env_file.open("a") as f:
        f.write("FERLITE_MQTT_USERNAME=pi-7\n")
    install(folder, user, "--mode", "kiosk", "--args", "--max-frames 8")
    assert not (prefix / "app" / "device" / "stale.py").exists() and (prefix / "venv" / "kept").exists()
    env = read_env_file(env_file)
    assert env["FERLITE_ARGS"] == "--mode kiosk --max-frames 8" and env["FERLITE_MQTT_USERNAME"] == "pi-7"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    result, logs = start_service(folder, user, clip)
    check_run(result, logs / "ferlite.jsonl", user, "kiosk", 8)
    before = read_log(logs / "ferlite.jsonl.1", user)  # ExecStartPre moved the first run's log aside
    assert before[0]["mode"] == "driver" and before[-1]["frames"] == 12


def test_service_runs_under_the_units_syscall_filters(installed):
    """The installed copy (LiteRT with XNNPACK, OpenCV, BlazeFace, the MQTT client and its SQLite outbox)
    under the unit's SystemCallFilter=, RestrictAddressFamilies= and MemoryDenyWriteExecute=, any
    violation fatal: what systemd would enforce, checked on this machine's architecture."""
    folder, user = installed
    require(shutil.which("systemd-analyze") is not None, "needs systemd-analyze (scripts/setup_mosquitto.sh)")
    python = str(folder / "opt" / "venv" / "bin" / "python")
    has = subprocess.run([python, "-c", "import seccomp"], capture_output=True, timeout=patient(30))
    require(has.returncode == 0, "needs python3-seccomp (apt; scripts/setup_mosquitto.sh installs it)")
    env_file = folder / "etc" / "ferlite.env"
    kept = env_file.read_text()
    # MQTT to a port nobody listens on: the client's sockets and the outbox, without a broker
    env_file.write_text(kept + 'FERLITE_ARGS="--mode driver --max-frames 12 --threads 2 '
                               '--mqtt mqtt://127.0.0.1:9/ferlite --device-id pi-sandbox"\n')
    try:
        result, logs = start_service(folder, user, folder / "clip.mp4", sandbox=True)
    finally:
        env_file.write_text(kept)
    assert result.returncode == 0, f"exit {result.returncode} (-31: SIGSYS, a filter was violated): {result.stderr}"
    records = read_log(logs / "ferlite.jsonl", user)
    assert records[-1]["status"] == "max_frames" and records[-1]["faces"] > 0
    assert records[-1]["mqtt"]["errors"] > 0  # it tried the broker
    outbox = folder / "state" / "ferlite" / ".local" / "state" / "ferlite" / "outbox-pi-sandbox.sqlite"
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o640
