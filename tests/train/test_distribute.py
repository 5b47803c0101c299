"""``python -m train --distribute data-parallel`` on real devices and real processes, not mocks: JAX's CPU
split into 2 devices, and 2 processes joined on 127.0.0.1, each train the same run as 1 device does, to
the same weights (float tolerance), with augmentation and dropout on; a process that is missing or dies
stops the job with one ``error:`` line instead of a hang. Each subprocess has a timeout.

JAX is needed (``pip install '.[distributed]'``): missing, these tests skip, and fail under CI=true.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_S = 420  # one small run on a busy 2-core machine; a hang is killed well before pytest's patience ends
# XLA's CPU collectives stop the process when one virtual device's thread is 40 s late, which a busy 2-core
# machine reaches (XLA's own message: "system can be overloaded ... Perhaps the timeout is too short").
PATIENT_COLLECTIVES = "--xla_cpu_collective_call_terminate_timeout_seconds=300"
# 86 training and 10 validation faces: both even, so 2 devices leave no face out and must match 1 exactly.
# crop augmentation (random shifts and flips), dropout and balanced class weights stay on: the random draws
# and the weighted loss must match too. SGD, whose step is proportional to the gradient (Adam's divides by
# its root mean square, which makes float noise in a near-zero gradient a full-size step).
# One step, the 86 faces as one global batch (43 per device): float noise grows fast over steps in this
# small BatchNorm network (measured while building this: 6 steps at lr 1e-4 on one device, the same
# batches in another order within each batch, ended ~1e-5 apart, as far as 1 and 2 devices), so
# equality is checked where it is sharp: ~1e-5 apart after one step, where a wrong batch, seed or
# per-device statistic moves the weights by ~1e-3 or more.
SMALL = ("--split", "random80", "--limit", "120", "--epochs", "1", "--batch-size", "96", "--augmentation", "crop",
         "--optimizer", "sgd", "--lr", "0.01", "--distribute", "data-parallel")
ATOL = 1e-4


@pytest.fixture(scope="module")
def jax_installed():
    if importlib.util.find_spec("jax") is None:
        msg = "JAX missing: pip install '.[distributed]' (scripts/test.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _env(devices: int = 1, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION_")}
    return {**env, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT),
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} {PATIENT_COLLECTIVES}",
            "JAX_PLATFORMS": "cpu", **extra}


def _train(*args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "train", *map(str, args)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait(p: subprocess.Popen, timeout: float = RUN_S) -> tuple[int, str, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"hung for {timeout} s:\n{out[-2000:]}\n{err[-3000:]}")
    return p.returncode, out, err


def _weights(run: Path) -> list[np.ndarray]:
    import keras
    import train.layers  # noqa: F401  (ferlite's layers, registered for load_model)
    return [np.asarray(w) for w in keras.models.load_model(run / "checkpoint.keras").get_weights()]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb)
    changed = 0
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(x, y, rtol=0, atol=ATOL)
        changed += 1
    assert changed > 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_device(jax_installed, sample_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dp") / "one"
    rc, so, se = _wait(_train("--data", sample_csv, "--out", out, *SMALL, env=_env(1)))
    assert rc == 0, se[-3000:]
    return out


def test_other_backends_and_flags_say_what_to_do(sample_csv, tmp_path):
    """No JAX work: bad launches stop with one error line before any training."""
    p = _train("--data", sample_csv, "--out", tmp_path / "r", *SMALL, env={**_env(), "KERAS_BACKEND": "tensorflow"})
    rc, _, err = _wait(p, 120)
    assert rc == 2 and err.strip().splitlines()[-1].startswith("error: --distribute data-parallel runs on the JAX ")
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()
    rc, _, err = _wait(_train("--data", sample_csv, "--out", tmp_path / "r", "--num-processes", "2", env=_env()), 120)
    assert rc == 2 and "need --distribute data-parallel" in err
    rc, _, err = _wait(_train("--data", sample_csv, "--out", tmp_path / "r", "--distribute", "data-parallel",
                              "--num-processes", "2", "--process-id", "0", env=_env()), 120)
    assert rc == 2 and "--coordinator" in err
    # Keras's variables set for a whole machine do not touch a plain run: the missing data is the only error.
    rc, _, err = _wait(_train("--data", tmp_path / "none.csv", "--out", tmp_path / "r",
                              env=_env(KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID="1")), 120)
    assert rc == 3 and "none.csv" in err


@pytest.mark.slow
def test_two_devices_train_the_same_weights_as_one(one_device, tmp_path):
    two = tmp_path / "two"
    rc, out, err = _wait(_train("--data", json.loads((one_device / "config.json").read_text())["data"], "--out", two,
                                *SMALL, env=_env(2)))
    assert rc == 0, err[-3000:]
    _assert_same_weights(one_device, two)
    dist = json.loads((two / "config.json").read_text())["distribution"]
    assert (dist["devices"], dist["processes"], dist["global_batch"], dist["per_device_batch"]) == (2, 1, 96, 48)
    assert json.loads((one_device / "config.json").read_text())["distribution"]["devices"] == 1
    h1, h2 = (json.loads((r / "metrics.json").read_text()) for r in (one_device, two))
    assert h1["best_val_accuracy"] == h2["best_val_accuracy"]


@pytest.mark.slow
def test_two_processes_join_one_job_and_train_the_same_weights(one_device, tmp_path):
    out, port = tmp_path / "two", _free_port()
    data = json.loads((one_device / "config.json").read_text())["data"]
    flags = ("--data", data, "--out", out, *SMALL, "--distribute-timeout", "60")
    p0 = _train(*flags, "--coordinator", f"127.0.0.1:{port}", "--num-processes", 2, "--process-id", 0, env=_env(1))
    # Process 1 as a launcher would start it: Keras's environment variables, no flags.
    p1 = _train(*flags, env=_env(1, KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                                 KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID="1"))
    (rc1, out1, err1), (rc0, out0, err0) = _wait(p1), _wait(p0)
    assert (rc0, rc1) == (0, 0), (err0[-3000:], err1[-3000:])
    _assert_same_weights(one_device, out)
    dist = json.loads((out / "config.json").read_text())
    assert (dist["distribution"]["processes"], dist["distribution"]["devices"]) == (2, 2)
    assert not {"coordinator", "process_id"} & set(dist)  # how a process joined is no part of the record
    assert "wrote" in out0 and "wrote" not in out1  # process 0 alone tests and writes


@pytest.mark.slow
def test_a_missing_process_stops_the_job_with_one_error(jax_installed, sample_csv, tmp_path):
    t0 = time.time()
    p0 = _train("--data", sample_csv, "--out", tmp_path / "r", *SMALL, "--coordinator", f"127.0.0.1:{_free_port()}",
                "--num-processes", 2, "--process-id", 0, "--distribute-timeout", 5, env=_env(1))
    rc, _, err = _wait(p0, 180)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("WARNING: All log", "I0000", "E0000"))]
    assert rc == 1 and lines[-1].startswith("error: process 0 of 2: the job at 127.0.0.1:") and "within 5 s" in lines[-1]
    assert time.time() - t0 < 150


@pytest.mark.slow
def test_a_process_that_dies_takes_the_job_down(jax_installed, sample_csv, tmp_path):
    out, port = tmp_path / "r", _free_port()
    flags = ("--data", sample_csv, "--out", out, *SMALL, "--epochs", "40", "--batch-size", "16",
             "--coordinator", f"127.0.0.1:{port}",
             "--num-processes", 2, "--distribute-timeout", 30)
    p0, p1 = _train(*flags, "--process-id", 0, env=_env(1)), _train(*flags, "--process-id", 1, env=_env(1))
    deadline = time.time() + RUN_S
    while not (out / "state.json").exists():  # one epoch done: the job is running
        assert time.time() < deadline and p0.poll() is None and p1.poll() is None, "the job never ran an epoch"
        time.sleep(0.2)
    p1.send_signal(signal.SIGKILL)
    t_kill = time.time()
    rc, _, err = _wait(p0, 120)
    _wait(p1)
    last = err.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("error: process 0 of 2: stopped, most likely because another process"), err[-3000:]
    assert time.time() - t_kill < 90
    assert json.loads((out / "state.json").read_text())["epoch"] >= 1  # finished epochs stay, for --resume


@pytest.mark.slow
def test_resume_continues_a_distributed_run(jax_installed, sample_csv, tmp_path):
    out = tmp_path / "r"
    rc, _, err = _wait(_train("--data", sample_csv, "--out", out, *SMALL, env=_env(2)))
    assert rc == 0, err[-3000:]
    rc, _, err = _wait(_train("--data", sample_csv, "--out", out, *SMALL, "--epochs", "2", "--resume", env=_env(2)))
    assert rc == 0, err[-3000:]
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 2 and len((out / "history.csv").read_text().strip().splitlines()) == 3
    assert json.loads((out / "config.json").read_text())["provenance"]["resumed"]
