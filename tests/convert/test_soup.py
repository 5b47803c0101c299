"""convert/soup.py (python -m convert soup) and train/weights.py: the weight average of a run and a fine-tuned copy of it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fine_tuned(tiny_run, tmp_path_factory) -> Path:
    """A copy of the tiny run trained two more epochs: a run that shares the tiny run's start."""
    from convert import calibration as cal
    from convert.pipeline import load_keras_model, read_config
    from device.metadata import read_metadata
    run = tmp_path_factory.mktemp("soup") / "tuned"
    shutil.copytree(tiny_run, run)
    model = load_keras_model(run / "model.keras", 7)
    rd = cal.load_run_data(run, read_config(run), read_metadata(run))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(cal.preprocess(rd.faces[rd.train]), rd.labels[rd.train], epochs=2, batch_size=32, verbose=0)
    model.save(run / "model.keras")
    return run


def soup(*args, runs_root: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "FERLITE_RUNS": str(runs_root)} if runs_root else None
    return subprocess.run([sys.executable, "-m", "convert", "soup", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=env)


@pytest.mark.slow
def test_the_soup_is_the_weighted_average_with_its_own_batchnorm_statistics(tiny_run, fine_tuned, tmp_path):
    import keras

    from convert import calibration as cal
    from convert.pipeline import check_member, load_keras_model, read_config
    from device.metadata import read_metadata
    from train.weights import batch_norms, input_stats
    out = tmp_path / "soup"
    # the first run named as records name it, runs/NAME, found under the runs root
    r = soup(f"runs/{tiny_run.name}", fine_tuned, "--out", out, "--share", 0.25, "--share", 0.75,
             runs_root=tiny_run.parent)
    assert r.returncode == 0, r.stderr
    assert "validation faces" in r.stdout

    a, b, s = (load_keras_model(p / "model.keras", 7) for p in (tiny_run, fine_tuned, out))
    for la, lb, ls in zip(a.layers, b.layers, s.layers):
        if isinstance(ls, keras.layers.Conv2D):  # kernels: the shares' average
            np.testing.assert_allclose(ls.kernel.numpy(), 0.25 * la.kernel.numpy() + 0.75 * lb.kernel.numpy(),
                                       rtol=1e-5, atol=1e-6)
    cfg = read_config(out)
    assert [x["share"] for x in cfg["soup"]["runs"]] == [0.25, 0.75]
    assert cfg["provenance"]["command"].startswith("python -m convert soup")
    check_member(out, tiny_run, read_metadata(tiny_run), read_config(tiny_run))  # same faces held out

    # the moving statistics are the averaged network's own: its BatchNorm inputs' mean and variance
    rd = cal.load_run_data(out, cfg, read_metadata(out))
    faces = cal.preprocess(rd.faces[rd.train])
    norms = batch_norms(s)
    for norm, (mean, var) in zip(norms, input_stats(s, norms, faces)):
        _, _, m, v = norm.get_weights()
        np.testing.assert_allclose(m, mean, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(v, var, rtol=1e-3, atol=1e-4)


def test_average_weights_checks_shares_and_shapes():
    from train.weights import average_weights

    class Net:  # what average_weights reads of a model
        def __init__(self, *ws):
            self.ws = [np.asarray(w, np.float32) for w in ws]

        def get_weights(self):
            return self.ws
    got = average_weights([Net([0.0, 2.0]), Net([4.0, 6.0])], [0.5, 0.5])
    np.testing.assert_allclose(got[0], [2.0, 4.0])
    with pytest.raises(ValueError, match="add up to 1"):
        average_weights([Net([0.0]), Net([1.0])], [0.5, 0.6])
    with pytest.raises(ValueError, match="different weight shapes"):
        average_weights([Net([0.0]), Net([1.0, 2.0])], [0.5, 0.5])


@pytest.mark.slow
def test_bad_input_is_one_line_and_writes_nothing(tiny_run, fine_tuned, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    for args, code, words in (([tiny_run, "--out", tmp_path / "a"], 2, "two or more"),
                              ([tiny_run, fine_tuned, "--out", tmp_path / "b", "--share", 1], 2, "one non-negative share"),
                              ([tiny_run, fine_tuned, "--out", taken], 2, "already exists"),
                              ([tiny_run, tmp_path / "missing", "--out", tmp_path / "c"], 3, "not found")):
        r = soup(*args)
        assert r.returncode == code, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and words in lines[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and not any(taken.iterdir())
    assert json.loads((tiny_run / "config.json").read_text())["model"] == "tiny_cnn"  # the runs untouched
