"""A real ``python -m train`` killed with SIGKILL, between epochs and in the middle of one, then --resume.

The run resumes from the last finished epoch (the killed epoch is done again, the finished ones
are not), ends like an uninterrupted run of the same seed within noise, and its ``train_time_s``
includes the epochs finished before the kill. Small on purpose: 600 rows, 3 epochs; a few minutes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")
KILL_AFTER = 2  # epochs finished before the kill; the resumed session trains epoch 3 only
FIGURES = ("accuracy", "macro_f1", "best_val_accuracy", "best_epoch", "epochs_run", "train_time_s")  # printed (-s)


def train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "train", "--data", str(data), "--out", str(out), "--limit", "600",
            "--epochs", "3", "--batch-size", "32", "--seed", "0", *extra]


def saved_epoch(out: Path) -> dict:
    try:  # written atomically: the old state or the new one, never half of one
        return json.loads((out / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"epoch": 0, "train_time_s": 0.0}


def cpu_s(pid: int) -> float:
    """CPU seconds the process has used (all its threads): an epoch's progress on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run(cmd: list[str], out: Path, log: Path, kill=None) -> dict:
    """Run ``cmd``; watch state.json; SIGKILL when ``kill(epoch, cpu_since_that_epoch)`` says so.
    -> exit code, wall time, CPU time at each saved epoch, the state when killed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    cpu_at, epoch, killed = {}, 0, None
    while p.poll() is None:
        e = saved_epoch(out)["epoch"]
        try:
            c = cpu_s(p.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if e != epoch:
            epoch, cpu_at[e] = e, c
        if kill is not None and kill(epoch, c - cpu_at.get(epoch, c)):
            p.send_signal(signal.SIGKILL)
            p.wait()
            killed = saved_epoch(out)
            break
        time.sleep(POLL_S)
    code = p.wait(timeout=900)
    return dict(code=code, wall=time.time() - t0, cpu_at=cpu_at, killed=killed, log=log.read_text())


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def history(out: Path) -> list[str]:
    return (out / "history.csv").read_text().splitlines()


@pytest.fixture(scope="module")
def reference(fer_full_csv, tmp_path_factory) -> dict:
    """The uninterrupted run, and how much CPU its last epoch took (to kill the others halfway through one)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    r = run(train_cmd(fer_full_csv, out), out, out.parent / "log.txt")
    assert r["code"] == 0, r["log"][-2000:]
    r.update(out=out, metrics=metrics(out), history=history(out),
             epoch_cpu=r["cpu_at"][KILL_AFTER + 1] - r["cpu_at"][KILL_AFTER])
    return r


@pytest.mark.slow
@pytest.mark.parametrize("where", ["between_epochs", "mid_epoch"])
def test_sigkill_then_resume(fer_full_csv, tmp_path, reference, where):
    out = tmp_path / "run"
    if where == "between_epochs":  # the moment state.json says epoch 2 is saved
        def kill(epoch, cpu_since):
            return epoch == KILL_AFTER
    else:  # half an epoch's CPU work after epoch 2 was saved: inside epoch 3
        def kill(epoch, cpu_since):
            return epoch == KILL_AFTER and cpu_since >= reference["epoch_cpu"] / 2
    killed = run(train_cmd(fer_full_csv, out), out, tmp_path / "killed.txt", kill)
    assert killed["code"] == -signal.SIGKILL, killed["log"][-2000:]
    state = killed["killed"]
    assert state["epoch"] == KILL_AFTER  # mid_epoch: epoch 3 had not been saved, so it was cut short
    assert state["train_time_s"] > 0  # the finished epochs' time is saved with them
    before = history(out)
    assert len(before) == 1 + KILL_AFTER
    assert not list(out.glob(".*")) and not (out / "metrics.json").exists()  # no half-written file

    resumed = run(train_cmd(fer_full_csv, out, "--resume"), out, tmp_path / "resumed.txt")
    assert resumed["code"] == 0, resumed["log"][-2000:]
    assert f"Epoch {KILL_AFTER + 1}/3" in resumed["log"] and "Epoch 1/3" not in resumed["log"]  # from the last saved epoch
    after = history(out)
    assert after[:1 + KILL_AFTER] == before  # the finished epochs are kept as they were
    assert [row.split(",")[0] for row in after[1:]] == ["1", "2", "3"]
    m, ref = metrics(out), reference["metrics"]
    assert m["epochs_run"] == 3 and m["n_test"] == ref["n_test"] and m["n_train"] == ref["n_train"]
    # Same seed, same data, same split: the epochs before the kill are the uninterrupted run's own,
    # and the end result is within noise of it (one face of the test split is 1/n).
    assert before[1:] == reference["history"][1:1 + KILL_AFTER]
    assert abs(m["accuracy"] - ref["accuracy"]) <= 0.05
    assert abs(m["best_val_accuracy"] - ref["best_val_accuracy"]) <= 0.05
    print(json.dumps({"where": where, "killed_state": state, "resumed": {k: m[k] for k in FIGURES},
                      "uninterrupted": {k: ref[k] for k in FIGURES}, "resumed_wall_s": round(resumed["wall"], 1)}))
    # train_time_s: the session before the kill counts too (it was lost before)
    assert m["train_time_s"] >= round(state["train_time_s"], 1)
    assert m["train_time_s"] <= state["train_time_s"] + resumed["wall"] + 0.1
