"""The JSONL log under the faults a deployed Pi meets: odd targets, a full disk, a read-only file
system, the file deleted or moved under the writer, a reader that goes away, and rotation.

The rule everywhere: the loop keeps classifying, the fault is said once on stderr and in the
summary, the log is tried again, and no line written before is ever damaged.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from device.log import JsonlWriter, rotated_name
from timing import patient  # noqa: E402  (hang guards, stretched under emulation)

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "device" / "run.py"


def run_py(*args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, str(RUN_PY), *map(str, args)], stderr=subprocess.PIPE, text=True,
                          timeout=patient(300), env=env, **kw)


def whole_lines(text: str) -> list[dict]:
    """Every line parses and the text ends with a whole line: nothing was damaged."""
    assert text == "" or text.endswith("\n"), repr(text[-80:])
    return [json.loads(line) for line in text.splitlines()]


def summary_on_stdout(p: subprocess.CompletedProcess) -> dict:
    return json.loads(p.stdout.strip().splitlines()[-1])


def log_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("log: ")]


# -- targets that are not regular files -------------------------------------------------------

def test_dev_null(faces_dir, model_int8):
    p = run_py("--source", faces_dir, "--model", model_int8, "--log", "/dev/null")
    assert p.returncode == 0, p.stderr
    s = summary_on_stdout(p)
    assert s["frames"] == 5 and s["log"] == {"path": "/dev/null", "lines": 7, "dropped": 0, "outages": 0}
    assert not log_lines(p.stderr)


def test_named_pipe(faces_dir, model_int8, tmp_path):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo) as f:  # the writer's open waits for this reader, as with any FIFO
            got["text"] = f.read()
    t = threading.Thread(target=reader)
    t.start()
    p = run_py("--source", faces_dir, "--model", model_int8, "--log", fifo)
    t.join(timeout=patient(60))
    assert p.returncode == 0, p.stderr
    records = whole_lines(got["text"])
    assert [r["type"] for r in records] == ["start"] + ["frame"] * 5 + ["event", "summary"]
    assert records[-1] == summary_on_stdout(p)


def test_named_pipe_reader_goes_away(faces_dir, model_int8, tmp_path):
    """The reader of the FIFO stops after 3 lines: EPIPE, said once; the loop runs to the end."""
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    got = []

    def reader():
        with open(fifo) as f:
            got.extend(f.readline() for _ in range(3))
    t = threading.Thread(target=reader)
    t.start()
    p = run_py("--source", faces_dir / "fer_test.mp4", "--loop", "--max-frames", "600", "--model", model_int8,
               "--log", fifo)  # ~200 KB of records: more than a pipe holds
    t.join(timeout=patient(60))
    assert p.returncode == 0, p.stderr
    assert [json.loads(line)["type"] for line in got] == ["start", "frame", "frame"]
    lines = log_lines(p.stderr)
    assert len(lines) == 1 and f"cannot write {fifo} (EPIPE: Broken pipe)" in lines[0]
    s = summary_on_stdout(p)
    assert s["frames"] == 600 and s["log"]["outages"] == 1 and s["log"]["dropped"] > 0


def test_dev_stdout_a_pipe(faces_dir, model_int8):
    p = run_py("--source", faces_dir, "--model", model_int8, "--log", "/dev/stdout")
    assert p.returncode == 0, p.stderr
    records = whole_lines(p.stdout)
    assert [r["type"] for r in records].count("summary") == 1  # not printed twice
    assert records[0]["type"] == "start" and records[-1]["type"] == "summary" and records[-1]["frames"] == 5


def test_dev_stdout_redirected_to_a_file(faces_dir, model_int8, tmp_path):
    """A second descriptor on the same file would write over the lines: the log goes through stdout itself."""
    out = tmp_path / "out.jsonl"
    with open(out, "w") as f:
        p = run_py("--source", faces_dir, "--model", model_int8, "--log", "/dev/stdout", stdout=f)
    assert p.returncode == 0, p.stderr
    records = whole_lines(out.read_text())
    assert [r["type"] for r in records] == ["start"] + ["frame"] * 5 + ["event", "summary"]


# -- a full disk ---------------------------------------------------------------------------------

def test_dev_full_keeps_classifying(faces_dir, model_int8):
    """/dev/full: every write fails with ENOSPC. The loop runs to the end; one line says so."""
    p = run_py("--source", faces_dir / "fer_test.mp4", "--model", model_int8, "--log", "/dev/full")
    assert p.returncode == 0, p.stderr
    lines = log_lines(p.stderr)
    assert len(lines) == 1 and "cannot write /dev/full (ENOSPC: No space left on device)" in lines[0]
    s = summary_on_stdout(p)
    assert s["frames"] == 115 and s["status"] == "end_of_source"
    assert s["log"]["lines"] == 0 and s["log"]["outages"] == 1 and s["log"]["error"].startswith("ENOSPC")
    assert s["log"]["dropped"] == 1 + 115 + sum(s["events"].values()) + 115 // 30 + 1  # every record, summary too


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs mounted for the test (root on Linux); skipped with the reason elsewhere."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(p.stderr or p.stdout).strip() or p.returncode}); "
                    "the injected faults below cover the same code")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> Path:
    """Take all but about ``leave`` bytes of the file system."""
    filler = mnt / "filler"
    st = os.statvfs(mnt)
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def test_full_tmpfs_during_a_run(faces_dir, model_int8, small_tmpfs):
    """A real ENOSPC on a regular file mid-run: the lines before it stay whole, the rest are counted."""
    fill(small_tmpfs, 12 * 1024)
    log = small_tmpfs / "run.jsonl"
    p = run_py("--source", faces_dir / "fer_test.mp4", "--model", model_int8, "--log", log)
    assert p.returncode == 0, p.stderr
    s = summary_on_stdout(p)
    assert s["frames"] == 115 and s["log"]["outages"] >= 1 and s["log"]["dropped"] > 0
    failed = [ln for ln in log_lines(p.stderr) if "cannot write" in ln]
    assert len(failed) == s["log"]["outages"]  # once per outage (a retry may fit a small record, then fail again)
    assert all("(ENOSPC: No space left on device)" in ln for ln in failed)
    records = whole_lines(log.read_text())  # no half line anywhere, the end included
    assert len(records) == s["log"]["lines"] > 1 and records[0]["type"] == "start"
    frames = [r["frame"] for r in records if r["type"] == "frame"]
    assert frames[:5] == [0, 1, 2, 3, 4] and frames == sorted(set(frames)) and len(frames) < 115


def test_full_tmpfs_then_space_again(small_tmpfs):
    """The writer on a real full disk: drops while full, writes again once space is freed, marks the gap."""
    filler = fill(small_tmpfs, 6 * 1024)
    said: list[str] = []
    path = small_tmpfs / "log.jsonl"
    w = JsonlWriter(path, retry_s=0.0, say=said.append)
    w.write({"type": "start"})
    n = 0
    while w.error is None:
        n += 1
        w.write({"type": "frame", "frame": n, "pad": "x" * 200})
    for k in range(5):  # dropped while the disk stays full
        w.write({"type": "frame", "frame": n + 1 + k, "pad": "x" * 200})
    filler.unlink()
    w.write({"type": "frame", "frame": n + 6})
    w.write({"type": "summary"})
    w.close()
    records = whole_lines(path.read_text())
    assert [r["frame"] for r in records if r["type"] == "frame"] == list(range(1, n)) + [n + 6]
    gap = next(r for r in records if r["type"] == "log")
    assert gap == {"type": "log", "event": "resumed", "dropped": 6, "error": "ENOSPC: No space left on device"}
    assert records[-1]["log"]["dropped"] == 6 and records[-1]["log"]["outages"] == 1
    assert len(said) == 2 and "cannot write" in said[0] and "again (6 records were dropped)" in said[1]


# -- injected faults: always run ------------------------------------------------------------------

class FaultyDisk:
    """``os.write`` with faults at given calls: a short write then ENOSPC, or EROFS, EIO."""

    def __init__(self, faults: dict[int, int]):
        self.faults, self.calls = faults, 0

    def __call__(self, fd: int, data) -> int:
        self.calls += 1
        err = self.faults.get(self.calls)
        if err == errno.ENOSPC and len(data) > 1:  # half the line reaches the disk first
            os.write(fd, bytes(data[:len(data) // 2]))
            raise OSError(err, os.strerror(err))
        if err:
            raise OSError(err, os.strerror(err))
        return os.write(fd, data)


def test_injected_faults_never_damage_earlier_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    said: list[str] = []
    disk = FaultyDisk({4: errno.ENOSPC, 5: errno.ENOSPC, 9: errno.EROFS, 10: errno.EIO, 11: errno.EROFS})
    with JsonlWriter(path, retry_s=0.0, say=said.append, write_fn=disk) as w:
        w.write({"type": "start"})
        for i in range(12):
            w.write({"type": "frame", "frame": i})
        w.write({"type": "summary"})
    records = whole_lines(path.read_text())
    kinds = [(r["type"], r.get("frame", r.get("event"))) for r in records]
    # calls 4-5 fail (frames 2, 3; the 2nd try carries the gap record with frame 3), call 6 writes
    # the gap record and frame 4 together; calls 9-11 fail (frames 7, 8, 9)
    assert kinds == [("start", None), ("frame", 0), ("frame", 1), ("log", "resumed"), ("frame", 4),
                     ("frame", 5), ("frame", 6), ("log", "resumed"), ("frame", 10), ("frame", 11),
                     ("summary", None)]
    gaps = [r for r in records if r["type"] == "log"]
    assert [g["dropped"] for g in gaps] == [2, 3]
    assert gaps[0]["error"] == "ENOSPC: No space left on device" and gaps[1]["error"].startswith("EROFS")
    assert records[-1]["log"] == {"path": str(path), "lines": 10, "dropped": 5, "outages": 2}
    assert [s.split(" (")[0] for s in said] == [f"log: cannot write {path}", f"log: writing {path} again"] * 2


def test_retry_waits_for_its_period(tmp_path):
    """Between tries the records are dropped without touching the disk (a failing SD card is not hammered)."""
    now = [0.0]
    disk = FaultyDisk({2: errno.EIO})
    w = JsonlWriter(tmp_path / "log.jsonl", retry_s=5.0, say=lambda s: None, clock=lambda: now[0], write_fn=disk)
    w.write({"type": "start"})
    w.write({"n": 1})  # EIO
    for k in range(10):
        now[0] += 0.4
        w.write({"n": 2 + k})
    assert disk.calls == 2 and w.dropped == 11
    now[0] += 2.0
    w.write({"n": 99})
    w.close()
    assert disk.calls == 3 and [r.get("n") for r in whole_lines((tmp_path / "log.jsonl").read_text())] == [None, None, 99]


# -- the file deleted or moved under the writer ---------------------------------------------------

def test_deleted_under_the_writer(tmp_path):
    path = tmp_path / "log.jsonl"
    said: list[str] = []
    with JsonlWriter(path, check_s=0.0, say=said.append) as w:
        w.write({"type": "start", "source": "x"})
        w.write({"type": "frame", "frame": 0})
        path.unlink()
        w.write({"type": "frame", "frame": 1})
        w.write({"type": "summary"})
    records = whole_lines(path.read_text())
    assert records[0] == {"type": "start", "source": "x", "part": 1}  # the new file says what ran
    assert [r["type"] for r in records] == ["start", "frame", "summary"] and records[1]["frame"] == 1
    assert len(said) == 1 and "was deleted or moved away" in said[0]


def test_moved_away_under_the_writer(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path, check_s=0.0, say=lambda s: None) as w:
        w.write({"type": "start"})
        w.write({"type": "frame", "frame": 0})
        path.rename(tmp_path / "moved.jsonl")
        w.write({"type": "frame", "frame": 1})
    assert [r["type"] for r in whole_lines((tmp_path / "moved.jsonl").read_text())] == ["start", "frame"]
    assert [r.get("frame") for r in whole_lines(path.read_text())] == [None, 1]


def test_deleted_just_before_the_summary(tmp_path):
    """Deleted less than check_s before the end: the summary still lands, in a new file."""
    path, said = tmp_path / "log.jsonl", []
    with JsonlWriter(path, check_s=3600.0, say=said.append) as w:
        w.write({"type": "start"})
        w.write({"type": "frame", "frame": 0})
        path.unlink()
        w.write({"type": "frame", "frame": 1})  # not looked for yet: goes with the deleted file
        w.write({"type": "summary", "frames": 2})
    records = whole_lines(path.read_text())
    assert [r["type"] for r in records] == ["start", "summary"]
    assert records[-1]["log"]["lost_with_deleted_file"] == 3
    assert len(said) == 1 and "was deleted or moved away" in said[0]


def test_deleted_during_a_run(faces_dir, model_int8, tmp_path):
    """run.py on a looped clip; the log is deleted while it runs: a new one is made, the run ends normally."""
    log = tmp_path / "run.jsonl"
    # Long enough to outlast the deleted-log check interval (CHECK_S) on a fast machine: at ~250 fps a
    # 400-frame run ended before the check, and the new log held the summary alone.
    FRAMES = 1500
    proc = subprocess.Popen([sys.executable, str(RUN_PY), "--source", faces_dir / "fer_test.mp4", "--loop",
                             "--max-frames", str(FRAMES), "--model", model_int8, "--log", log],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    deleted = False
    while proc.poll() is None and not deleted:
        if log.exists() and log.stat().st_size > 20_000:  # some way in
            log.unlink()
            deleted = True
    out, err = proc.communicate(timeout=patient(300))
    assert proc.returncode == 0, err
    assert deleted, "the run ended before the log could be deleted"
    lines = log_lines(err)
    assert len(lines) == 1 and "was deleted or moved away" in lines[0]
    records = whole_lines(log.read_text())
    assert records[0]["type"] == "start" and records[0]["part"] == 1
    assert records[-1]["type"] == "summary" and records[-1]["frames"] == FRAMES
    frames = [r["frame"] for r in records if r["type"] == "frame"]
    assert frames == list(range(frames[0], FRAMES))  # from some frame on, none missing


# -- rotation ----------------------------------------------------------------------------------

def test_rotation_keeps_k_files(faces_dir, model_int8, tmp_path):
    log = tmp_path / "kiosk.jsonl"
    p = run_py("--source", faces_dir / "fer_test.mp4", "--model", model_int8, "--log", log,
               "--log-max-mb", "0.005", "--log-keep", "2")
    assert p.returncode == 0, p.stderr
    s = summary_on_stdout(p)
    assert s["log"]["rotations"] >= 3
    files = [rotated_name(log, 2), rotated_name(log, 1), log]
    assert all(f.exists() for f in files) and not rotated_name(log, 3).exists()
    parts, frames = [], []
    for f in files:
        text = f.read_text()
        records = whole_lines(text)
        assert len(text.encode()) <= 5_000 + len(text.splitlines()[-1]) + 1  # the cap, give or take the last line
        assert records[0]["type"] == "start"
        parts.append(records[0].get("part", 0))
        frames += [r["frame"] for r in records if r["type"] == "frame"]
    assert parts == [parts[0], parts[0] + 1, parts[0] + 2] and parts[-1] == s["log"]["rotations"]
    assert frames == list(range(frames[0], 115))  # the newest records, in order, none missing
    assert whole_lines(log.read_text())[-1] == s


def test_rotation_keep_zero(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path, max_mb=0.001, keep=0) as w:
        w.write({"type": "start"})
        for i in range(100):
            w.write({"type": "frame", "frame": i})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]
    records = whole_lines(path.read_text())
    assert records[0]["type"] == "start" and records[-1]["frame"] == 99 and path.stat().st_size <= 1000


def test_summary_that_rotates_counts_its_own_rotation(tmp_path):
    """The summary line itself can push the file over the cap: its rotation count includes that one."""
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path, max_mb=0.001, keep=1) as w:
        w.write({"type": "start"})
        frame = {"type": "frame", "pad": "x" * 8}
        while path.stat().st_size + 2 * len(json.dumps(frame)) < 1000:  # fill to just under the cap
            w.write(frame)
        assert w.rotations == 0
        summary = {"type": "summary", "frames": 1}
        w.write(summary)
    last = whole_lines(path.read_text())
    assert last[0]["part"] == summary["log"]["rotations"] == 1 and last[-1] == summary


@pytest.mark.parametrize("args, words", [
    (("--log-max-mb", "1"), "--log-max-mb needs --log FILE"),
    (("--log", "x.jsonl", "--log-keep", "5"), "--log-keep needs --log-max-mb"),
    (("--log", "x.jsonl", "--log-max-mb", "0"), "Invalid value for '--log-max-mb'"),
])
def test_log_flag_errors(faces_dir, model_int8, tmp_path, args, words):
    p = run_py("--source", faces_dir / "fer_justin.jpg", "--model", model_int8, *args, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, p.stderr
