"""The teachers' outputs on a run's training faces (train/distill.py's teacher_probs.npz), made ahead.

    python scripts/teacher_cache.py --data ../shared/data/fer2013/fer2013.csv.gz --out .gpu/teacher_probs.npz \
        --teacher device/models/default --teacher /root/ferlite-runs/RUN

Why: a lent GPU machine has no LiteRT to run a converted teacher (``device/models/default``), and
the students there should not spend its minutes on the teachers; ``scripts/device_train.py
--teacher-cache`` puts this file in each run folder. The faces, split and checks are train_run's
own (``--split``/``--seed``/``--val-fraction`` as the students will be trained), so the cache's key
matches theirs; give each teacher by the path the students will use.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the teachers load Keras (TensorFlow) here

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.errors import exit_with, run_click  # noqa: E402
from train.config import SPLITS, TrainConfig  # noqa: E402


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--teacher", "teachers", multiple=True, required=True, metavar="RUN|MODEL")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(SPLITS), default=TrainConfig.split)
@click.option("--seed", type=int, default=TrainConfig.seed)
@click.option("--val-fraction", type=float, default=TrainConfig.val_fraction)
def main(data, teachers, out, split, seed, val_fraction):
    """Write the teachers' mean softmax (faces + mirror images) on the training faces to --out."""
    from train import distill
    from train.data import load_fer2013
    from train.ferplus import LABEL_SETS, run_split
    cfg = TrainConfig(data=data, out=str(out), split=split, seed=seed, val_fraction=val_fraction,
                      teachers=list(teachers))
    ds = load_fer2013(data)
    faces = ds.faces[run_split(ds, None, split, seed, val_fraction).train]
    models = distill.check_teachers(cfg, ds.sha256, LABEL_SETS[cfg.labels])
    with tempfile.TemporaryDirectory() as tmp:
        probs = distill.teacher_probs(models, faces, Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / distill.CACHE, out)
    print(f"{out}: {probs.shape[0]} training faces, {len(models)} teacher(s)")


if __name__ == "__main__":
    exit_with(run_click(main, prog_name="scripts/teacher_cache.py"))
