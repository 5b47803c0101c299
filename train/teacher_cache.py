"""The teachers' outputs on a run's training faces (train/distill.py's teacher_probs.npz), made ahead
on one machine and staged into run folders on another.

    python -m train teacher-cache --data ../shared/data/fer2013/fer2013.csv.gz --out .gpu/teacher_probs.npz \
        --teacher device/models/default --teacher runs/RUN
    python -m train stage-teacher-cache .gpu/teacher_probs.npz runs/student-s1 runs/student-s2

Why: a lent GPU machine has no LiteRT to run a converted teacher (``device/models/default``), and
the students there should not spend its minutes on the teachers. The faces, split and checks are
train_run's own (``--split``/``--seed``/``--val-fraction`` as the students will be trained), so the
cache's key matches theirs; give each teacher by the path the students will use. ``stage-teacher-cache``
gives the teacher files there the mtimes the key records and copies the cache into each new run folder,
so the students read it instead of running the teachers (train them with ``--resume``: a folder
holding only the cache is not empty; nothing else is resumed).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from device.errors import InputError

from .config import SPLITS, TrainConfig


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--teacher", "teachers", multiple=True, required=True, metavar="RUN|MODEL")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(SPLITS), default=TrainConfig.split, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--val-fraction", type=float, default=TrainConfig.val_fraction, show_default=True)
def make(data, teachers, out, split, seed, val_fraction):
    """Write the teachers' mean softmax (faces + mirror images) on the training faces to --out."""
    from .cli import _import_train_run
    _import_train_run()  # first: the teachers load Keras, and TensorFlow's import-time chatter stays off stderr
    from . import distill
    from .data import load_fer2013
    from .ferplus import LABEL_SETS, run_split
    cfg = TrainConfig(data=data, out=str(out), split=split, seed=seed, val_fraction=val_fraction,
                      teachers=list(teachers))
    ds = load_fer2013(data)
    faces = ds.faces[run_split(ds, None, split, seed, val_fraction).train]
    models = distill.check_teachers(cfg, ds.sha256, LABEL_SETS[cfg.labels])
    with tempfile.TemporaryDirectory() as tmp:
        probs = distill.teacher_probs(models, faces, Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / distill.CACHE, out)
    click.echo(f"{out}: {probs.shape[0]} training faces, {len(models)} teacher(s)")


def stage(cache: Path, run_dirs: list[Path]) -> None:
    """Give the teacher files the identity the cache's key names, and put the cache in each new run folder."""
    import numpy as np

    from .cli import _import_train_run
    _import_train_run()  # distill.py imports Keras: its backend's import-time chatter stays off stderr
    from .distill import CACHE
    with np.load(cache) as saved:
        key = json.loads(str(saved["key"]))
    for path, size, mtime_ns in key[:-1]:
        p = Path(path)
        if not p.is_file() or p.stat().st_size != size:
            raise InputError(f"{cache}: teacher {p} missing or not {size} bytes")
        os.utime(p, ns=(mtime_ns, mtime_ns))
    for run in run_dirs:
        run.mkdir(parents=True, exist_ok=True)
        if not (run / "state.json").exists():  # a run already under way has read it
            shutil.copyfile(cache, run / CACHE)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("cache", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
def stage_cli(cache, runs):
    """Stage CACHE (made by teacher-cache) into the new run folders RUNS, for students trained with --resume."""
    stage(cache, list(runs))
    click.echo(f"{cache} staged in {len(runs)} run folder(s)")
