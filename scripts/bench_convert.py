#!/usr/bin/env python
"""Smoke-test the whole Keras -> TFLite path: train a model for a moment, convert it, print the report.

    python scripts/bench_convert.py                       # vanilla_cnn, 2 epochs on ../shared sample.csv
    python scripts/bench_convert.py --model residual_cnn --epochs 1 --out runs/smoke
    python scripts/bench_convert.py --run runs/existing   # convert an existing run only

Trains with train.fit.train_run (random80 split, the sample holds Training rows only),
then runs convert.pipeline.run with --int8 --float16 --dynamic and prints the summary
and where report.md is. Not a test: numbers on 420 faces say little about the model.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "sample.csv"))
    ap.add_argument("--model", default="vanilla_cnn")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=None, help="run folder to create (default: a temporary folder)")
    ap.add_argument("--run", default=None, help="convert this existing run folder instead of training one")
    ap.add_argument("--calib", type=int, default=200)
    ap.add_argument("--max-drop", type=float, default=None)
    args = ap.parse_args()

    from convert import quiet_tensorflow
    quiet_tensorflow()
    from convert.pipeline import run as convert_run
    from convert.report import summary
    from device.errors import EXIT_GATE

    if args.run:
        run = Path(args.run)
    else:
        from train.config import resolve
        from train.fit import train_run
        run = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ferlite-smoke-")) / "run"
        t = time.time()
        train_run(resolve("default", data=args.data, model=args.model, out=str(run), epochs=args.epochs,
                          split="random80", weights=None))
        print(f"trained {args.model} for {args.epochs} epoch(s) in {time.time() - t:.1f}s -> {run}")
    t = time.time()
    res = convert_run(run, int8=True, float16=True, dynamic=True, calib=args.calib, max_drop=args.max_drop)
    print(f"converted in {time.time() - t:.1f}s")
    print(summary(res.report, res.paths["report_md"]))
    return 0 if res.gate_passed in (None, True) else EXIT_GATE


if __name__ == "__main__":
    sys.exit(main())
