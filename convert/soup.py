"""Average the weights of runs fine-tuned from one start into one run folder (a "model soup").

    python -m convert soup RUN_A RUN_B [RUN ...] --out runs/soup [--share 0.5 --share 0.5]

Why: runs that share a starting point (``train --init-from``, e.g. the shipped default recovered by
``python -m convert recover`` and a fine-tuned copy of it) lie in one basin, and the average of their
weights often scores better than either (Wortsman et al., "Model soups", ICML 2022; Izmailov et al.,
SWA, 2018) at the cost of one network: one pass per face, unlike an ensemble. Runs trained from
different random starts do not average (their channels are in different orders): the printed
validation accuracy says so at once.

The runs must be the same network with the same labels, data and split (``convert --member``'s rule).
The BatchNorm statistics of the average are not the average of the statistics: they are re-estimated
on ``recover.BN_FACES`` shuffled training faces. Written like a training run (model.keras, metadata.json,
config.json with the runs, their shares and the command), so ``convert select``, ``convert`` and
``train --init-from`` take it; nothing is written when a check fails.
"""
from __future__ import annotations

from pathlib import Path

import click

from .recover import batchnorm_faces, write_run

PROG = "python -m convert soup"


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


def soup(runs: list[Path], out: Path, shares: list[float] | None, data: str | None, provenance: dict) -> dict:
    from convert import calibration as cal
    from convert import quiet_tensorflow
    quiet_tensorflow()
    from convert.pipeline import load_keras_model, read_config
    from convert.report import keras_predict
    from device.errors import InputError, UsageError
    from device.metadata import read_metadata
    from device.metrics import evaluate
    from device.provenance import file_sha256
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
    bn_faces = batchnorm_faces(rd)
    reestimate_batchnorm(model, bn_faces)
    faces, truth = cal.preprocess(rd.faces[rd.val]), rd.labels[rd.val]
    val = evaluate(keras_predict(model), faces, truth, class_names=meta["labels"])
    record = {"runs": [{"run": str(r), "sha256": file_sha256(r / "model.keras"), "share": s}
                       for r, s in zip(runs, shares)],
              "bn_faces": len(bn_faces), "val_accuracy": val["accuracy"], "val_faces": int(len(truth))}
    write_run(out, model, meta, {**cfg, "out": str(out), "soup": record}, provenance)
    return record


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The new run folder (must not exist yet).")
@click.option("--share", "shares", type=float, multiple=True, help="Each run's share of the average, in the runs' "
              "order (repeat once per run; they must add up to 1) [default: equal shares].")
@click.option("--data", help="The runs' data file, if it moved since training.")
@click.pass_context
def cli(ctx, runs, out, shares, data):
    """Average the weights of runs fine-tuned from one start into a new run folder."""
    from device.paths import resolve_run
    from device.provenance import record
    runs = [resolve_run(r) for r in runs]  # a recorded runs/NAME: under the runs root
    r = soup(runs, out, list(shares) or None, data, record(PROG, ctx.obj, ctx.params))
    click.echo(f"wrote {out}: the average of {len(r['runs'])} runs scores {r['val_accuracy']:.2%} on "
               f"{r['val_faces']} validation faces (one pass; python -m convert select compares it)")
