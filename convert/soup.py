#!/usr/bin/env python3
"""Average the weights of runs fine-tuned from one start into one run folder (a "model soup").

    python scripts/soup.py RUN_A RUN_B [RUN ...] --out runs/soup [--share 0.5 --share 0.5]

Why: runs that share a starting point (``train --init-from``, e.g. the shipped default recovered by
``scripts/recover_keras.py`` and a fine-tuned copy of it) lie in one basin, and the average of their
weights often scores better than either (Wortsman et al., "Model soups", ICML 2022; Izmailov et al.,
SWA, 2018) at the cost of one network: one pass per face, unlike an ensemble. Runs trained from
different random starts do not average (their channels are in different orders): the printed
validation accuracy says so at once.

The runs must be the same network with the same labels, data and split (``convert --member``'s rule).
The BatchNorm statistics of the average are not the average of the statistics: they are re-estimated
on BN_FACES shuffled training faces. Written like a training run (model.keras, metadata.json,
config.json with the runs, their shares and the command), so ``val_select``, ``convert`` and
``train --init-from`` take it; nothing is written when a check fails.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROG = "python scripts/soup.py"
BN_FACES = 4096  # as recover_keras: enough for each channel's mean and variance, a few seconds per layer


def parse_opt(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="finished run folders of one network (two or more)")
    ap.add_argument("--out", required=True, help="the new run folder (must not exist yet)")
    ap.add_argument("--share", type=float, action="append", help="each run's share of the average, in the "
                    "runs' order (repeat once per run; they must add up to 1); default: equal shares")
    ap.add_argument("--data", help="the runs' data file, if it moved since training")
    return ap.parse_args(argv)


def check_runs(runs: list[Path], shares: list[float] | None) -> list[float]:
    """The shares to use, once the runs are two or more of one network that held out the same faces."""
    from convert.pipeline import check_member, check_run_dir, read_config
    from device.errors import UsageError
    from device.metadata import read_metadata
    if len(runs) < 2:
        raise UsageError("give two or more runs to average")
    shares = shares or [1.0 / len(runs)] * len(runs)
    if len(shares) != len(runs) or min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-6:
        raise UsageError(f"--share: one non-negative share per run ({len(runs)}), adding up to 1; got {shares}")
    first = check_run_dir(runs[0])
    meta, cfg = read_metadata(first), read_config(first)
    for run in runs[1:]:
        check_member(run, first, meta, cfg)  # same labels, data and split
        if read_config(run).get("model") != cfg.get("model"):
            raise UsageError(f"{run} is a {read_config(run).get('model')}, {first} a {cfg.get('model')}: "
                             "only one network's weights average")
    return shares


def soup(runs: list[Path], out: Path, shares: list[float] | None, data: str | None) -> dict:
    from convert import calibration as cal
    from convert import quiet_tensorflow
    quiet_tensorflow()
    from convert.pipeline import load_keras_model, read_config
    from convert.report import keras_predict
    from device.errors import InputError, UsageError
    from device.metadata import read_metadata
    from device.metrics import evaluate
    from device.provenance import file_sha256
    from recover_keras import write_run
    from train.weights import average_weights, reestimate_batchnorm

    if out.exists():
        raise UsageError(f"--out {out} already exists: give a new folder")
    shares = check_runs(runs, shares)
    meta, cfg = read_metadata(runs[0]), read_config(runs[0])
    models = [load_keras_model(run / "model.keras", len(meta["labels"])) for run in runs]
    try:
        models[0].set_weights(average_weights(models, shares))
    except ValueError as e:
        raise InputError(f"cannot average these runs: {e}") from None
    model = models[0]
    rd = cal.load_run_data(runs[0], cfg, meta, data)
    reestimate_batchnorm(model, cal.preprocess(rd.faces[np.random.default_rng(0).permutation(rd.train)[:BN_FACES]]))
    faces, truth = cal.preprocess(rd.faces[rd.val]), rd.labels[rd.val]
    val = evaluate(keras_predict(model), faces, truth, class_names=meta["labels"])
    record = {"runs": [{"run": str(r), "sha256": file_sha256(r / "model.keras"), "share": s}
                       for r, s in zip(runs, shares)],
              "bn_faces": int(min(BN_FACES, len(rd.train))), "val_accuracy": val["accuracy"], "val_faces": int(len(truth))}
    write_run(out, model, meta, {**cfg, "out": str(out), "soup": record}, PROG)
    return record


def main(opt: argparse.Namespace) -> int:
    from device.errors import guarded

    def go():
        r = soup([Path(p) for p in opt.runs], Path(opt.out), opt.share, opt.data)
        print(f"wrote {opt.out}: the average of {len(r['runs'])} runs scores {r['val_accuracy']:.2%} on "
              f"{r['val_faces']} validation faces (one pass; python scripts/val_select.py compares it)")
    return guarded(go)


if __name__ == "__main__":
    sys.exit(main(parse_opt()))
