#!/usr/bin/env python
"""Smoke-test the whole Keras -> TFLite path: train a model for a moment, convert it, print the report.

    python scripts/release/bench_convert.py                       # vanilla_cnn, 2 epochs on ../shared sample.csv
    python scripts/release/bench_convert.py --model residual_cnn --epochs 1 --out runs/smoke
    python scripts/release/bench_convert.py --run runs/existing   # convert an existing run only

Trains with train.fit.train_run (random80 split, the sample holds Training rows only),
then runs convert.pipeline.run with --int8 --float16 --dynamic and prints the summary
and where report.md is. Not a test: numbers on 420 faces say little about the model.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: the packages are in the repository

import click  # noqa: E402

from device.errors import exit_with, run_click  # noqa: E402
from device.paths import shared_data  # noqa: E402


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", default=str(shared_data("fer2013", "sample.csv")), show_default=True)
@click.option("--model", default="vanilla_cnn", show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=2, show_default=True)
@click.option("--out", help="Run folder to create [default: a temporary folder].")
@click.option("--run", "run_dir", help="Convert this existing run folder instead of training one.")
@click.option("--calib", type=click.IntRange(1), default=200, show_default=True)
@click.option("--max-drop", type=float)
def main(data, model, epochs, out, run_dir, calib, max_drop):
    """Smoke-test the whole Keras -> TFLite path: train a model for a moment, convert it, print the report."""
    from convert import quiet_tensorflow
    quiet_tensorflow()
    from convert.pipeline import run as convert_run
    from convert.report import summary
    from device.errors import GateFailed

    if run_dir:
        run = Path(run_dir)
    else:
        from train.config import resolve
        from train.fit import train_run
        run = Path(out) if out else Path(tempfile.mkdtemp(prefix="ferlite-smoke-")) / "run"
        t = time.time()
        train_run(resolve("default", data=data, model=model, out=str(run), epochs=epochs,
                          split="random80", weights=None))
        click.echo(f"trained {model} for {epochs} epoch(s) in {time.time() - t:.1f}s -> {run}")
    t = time.time()
    res = convert_run(run, int8=True, float16=True, dynamic=True, calib=calib, max_drop=max_drop)
    click.echo(f"converted in {time.time() - t:.1f}s")
    click.echo(summary(res.report, res.paths["report_md"]))
    if res.gate_passed is False:
        raise GateFailed("the int8 accuracy drop exceeds --max-drop")


if __name__ == "__main__":
    exit_with(run_click(main, prog_name="scripts/release/bench_convert.py"))
