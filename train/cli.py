"""``python -m train``: flags -> TrainConfig -> train_run. Errors become one ``error: ...`` line.
``python -m train bench | pack | unpack | teacher-cache | stage-teacher-cache ...``: the commands of
train/bench.py, train/pack.py and train/teacher_cache.py.

Exit codes: the one table in ``device/errors.py`` (README, "Exit codes"); Ctrl-C is 130, with the
finished epochs saved for ``--resume``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from device.errors import EXIT_INTERRUPTED, InputError, commands_epilog, exit_with, run_commands
from device.paths import resolve_run
from device.provenance import record
from device.stderr import captured_stderr

from .config import (AUGMENTATIONS, CLASS_WEIGHTS, KEEPS, DISTRIBUTE_MODES, LABEL_SOURCES, LR_SCHEDULES, OPTIMIZERS,
                     PRECISIONS, PRESET_ALIASES, PRESETS, SPLITS, recorded_options, resolve)
from .data import DataError
from .distribute import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID
from .ferplus import DEFAULT_FOLDERS, DEFAULT_NAMES, SCHEMES, FerplusError, default_votes_path
from . import bench, pack, teacher_cache
from .registry import MODEL_NAMES, normalize_weights

PROG = "python -m train"
SUBCOMMANDS = {"bench": bench.cli, "pack": pack.pack, "unpack": pack.unpack, "teacher-cache": teacher_cache.make,
               "stage-teacher-cache": teacher_cache.stage_cli}


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=commands_epilog(PROG, SUBCOMMANDS))
@click.option("--data", required=True, help="FER2013 .csv / .csv.gz, or an image folder (train/<class>/*.png).")
@click.option("--model", type=click.Choice(MODEL_NAMES), default=None,
              help="Network (default vanilla_cnn; vgg_cnn with --preset shipped).")
@click.option("--out", required=True, help="Run folder, e.g. runs/NAME.")
@click.option("--preset", type=click.Choice([*PRESETS, *PRESET_ALIASES]), default="baseline", show_default=True,
              help="baseline = a quick vanilla_cnn; paper = Adam 1e-4, 60 epochs, batch 32, paper class weights, "
                   "random80 split; shipped = the shipped default model's recipe (train/config.py; the old "
                   "names default and best still work).")
@click.option("--epochs", type=click.IntRange(min=0), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=None,
              help="cosine decay over the epochs (baseline and shipped presets) or constant (paper preset).")
@click.option("--warmup", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Fraction of the epochs spent ramping the rate up linearly.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="adam, or sgd with Nesterov momentum.")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=None)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None)
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=None)
@click.option("--augmentation", type=click.Choice(AUGMENTATIONS), default=None,
              help="paper: flip, rotation, shift, zoom; crop: flip and random crops of the padded face; "
                   "field: crop, rotation and a random worse camera (blur, small face, dark, washed out, noise); "
                   "field_jpeg: field, its frames often stored as low-quality JPEG.")
@click.option("--erasing", type=click.FloatRange(0, 1), default=None, help="Random-erasing probability per face.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="mixed_bfloat16: bf16 math with float32 weights, ~1.4x faster on CPUs with AMX (python -m train "
                   "bench --precision); model.keras is saved in float32 either way.")
@click.option("--keep", type=click.Choice(KEEPS), default=None,
              help="The epoch that becomes model.keras: best on the clean validation faces (default) or the last "
                   "(a fine-tune for degraded faces, which clean validation does not measure). Can change on --resume.")
@click.option("--class-weights", type=click.Choice(CLASS_WEIGHTS), default=None)
@click.option("--split", type=click.Choice(SPLITS), default=None)
@click.option("--seed", type=int, default=None, help="Seeds the split (and the weights, unless --init-seed).")
@click.option("--init-seed", type=int, default=None,
              help="Seeds the weights, augmentation and shuffling only: another ensemble member on the same split.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None)
@click.option("--weights", default=None, help="resnet50 backbone: imagenet, none, or a local .h5 / .weights.h5 file.")
@click.option("--keep-stem-pool", is_flag=True, default=None, help="resnet50: keep the stem max-pool.")
@click.option("--fine-tune-epochs", type=click.IntRange(min=0), default=None,
              help="Phase 2: unfreeze conv5 at lr/10 for N epochs.")
@click.option("--cache-views", type=click.IntRange(min=1), default=None,
              help="resnet50 phase 1: backbone features cached for K views per face.")
@click.option("--no-cache", is_flag=True, default=False, help="resnet50: run the frozen backbone every step.")
@click.option("--no-augment", is_flag=True, default=False)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None)
@click.option("--resume", is_flag=True, default=False, help="Continue an interrupted run in --out.")
@click.option("--limit", type=click.IntRange(min=14), default=None, help="Subsample to about N rows (smoke runs).")
@click.option("--labels", type=click.Choice(LABEL_SOURCES), default=None,
              help="fer2013: the file's own 7 labels (default); ferplus: FER+'s 10 annotators' votes, 8 classes.")
@click.option("--ferplus", default=None,
              help=f"FER+ votes file, line-aligned with --data (default: {' or '.join(DEFAULT_NAMES)} beside "
                   f"--data or in its {DEFAULT_FOLDERS[-1]}/).")
@click.option("--label-scheme", type=click.Choice(SCHEMES), default=None,
              help="FER+: majority (ties, unknown, NF dropped), soft (the vote distribution as target), "
                   "pld (a label drawn from the votes each epoch).")
@click.option("--init-from", default=None, metavar="RUN",
              help="Start from a finished run's weights (same model, data, split and seed), e.g. a FER+ model "
                   "from a FER2013 run; labels both have start from it, new ones (Contempt) fresh.")
@click.option("--teacher", "teachers", multiple=True, metavar="RUN|MODEL",
              help="Distil a finished run, or a converted .tflite model (a file, or a folder such as "
                   "device/models/default), into this one (repeatable: their mean, with mirror images); it "
                   "must have held out the same faces (train/distill.py).")
@click.option("--distill-weight", type=click.FloatRange(0, 1), default=None,
              help="The teachers' share of each target (default 0.7); the rest is the face's label.")
@click.option("--distill-temperature", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Softens (>1) or sharpens (<1) the teachers' probabilities (default 1).")
@click.option("--distribute", type=click.Choice(DISTRIBUTE_MODES), default=None,
              help="none (default): one process, one device. data-parallel: one run over every device of this "
                   "machine, or of several processes/machines (--num-processes, --process-id, --coordinator): "
                   "Keras's DataParallel, JAX backend only (KERAS_BACKEND=jax; pip install '.[distributed]'); "
                   "TensorFlow and PyTorch stop with an error. --batch-size is the global batch; process 0 writes "
                   "the run folder. docs/TRAINING.md, 'Training on several devices or machines'.")
@click.option("--coordinator", envvar=ENV_COORDINATOR, show_envvar=True, default=None, metavar="HOST:PORT",
              help="data-parallel, several processes: process 0's address, the same on every process (Keras's "
                   "comma-separated list of every address also works: the first is taken).")
@click.option("--num-processes", type=click.IntRange(min=1), envvar=ENV_NUM_PROCESSES, show_envvar=True,
              default=None, help="data-parallel: processes in the job (default 1).")
@click.option("--process-id", type=click.IntRange(min=0), envvar=ENV_PROCESS_ID, show_envvar=True, default=None,
              help="data-parallel: this process, 0..N-1 (0 writes the run folder).")
@click.option("--distribute-timeout", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="data-parallel, several processes: how long to wait for every process to join, and for a "
                   "silent one, before the job stops with an error (default 120).")
@click.pass_context
def main(ctx, data, model, out, preset, no_cache, no_augment, **opts):
    """Train a facial-expression model on FER2013 (or its FER+ votes) into a run folder."""
    _launch_from_env(ctx, opts)
    if not Path(data).exists():
        raise DataError(f"{data}: no such file or folder")
    if opts["labels"] == "ferplus":
        opts["ferplus"] = opts["ferplus"] or _default_votes(data)
        if not Path(opts["ferplus"]).is_file():
            raise FerplusError(f"--ferplus {opts['ferplus']}: no such file")
    # A recorded runs/NAME (records name runs so) is under the runs root, device/paths.py.
    opts["teachers"] = [str(resolve_run(t)) for t in opts["teachers"]] or None
    opts["init_from"] = opts["init_from"] and str(resolve_run(opts["init_from"]))
    weights = opts.pop("weights")
    if normalize_weights(weights) not in (None, "imagenet"):
        if not Path(weights).is_file():
            raise InputError(f"--weights {weights}: no such file (expected imagenet, none or a weights file)")
    cfg = resolve(preset, data=data, model=model, out=out, weights=weights,
                  cache=False if no_cache else None, augment=False if no_augment else None, **opts)
    train_run = _import_train_run()  # Keras/TF load only once the flags are known to be good
    train_run(cfg, provenance=record(PROG, ctx.obj, recorded_options(cfg)))  # config.json keeps the command as typed


def _import_train_run():
    """``train.fit.train_run``, with TensorFlow's import-time C++ chatter kept off stderr. Why: on CPUs where
    oneDNN is on by default, TF prints its banner and absl's pre-init warning from C++ past
    TF_CPP_MIN_LOG_LEVEL, and a bad --teacher or --init-from found after the import must still be one line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with captured_stderr() as cap:
            from .fit import train_run
    except BaseException:
        sys.stderr.write(cap.text)  # what the failed import printed
        raise
    return train_run


def _launch_from_env(ctx, opts: dict) -> None:
    """Keras's KERAS_DISTRIBUTION_* variables speak only to a distributed run: one set for a whole machine
    must not stop a plain ``python -m train`` there (typed flags still need --distribute)."""
    if opts["distribute"] in (None, "none"):
        for name in ("coordinator", "num_processes", "process_id"):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.ENVIRONMENT:
                opts[name] = None


def _default_votes(data: str) -> str:
    found = default_votes_path(data)
    if found is None:
        raise click.UsageError(f"--labels ferplus needs --ferplus PATH: no {' or '.join(DEFAULT_NAMES)} beside "
                               f"{data} or in {Path(data).parent / DEFAULT_FOLDERS[-1]}/")
    return str(found)


def run(argv=None) -> int:
    """Entry point: one ``error: ...`` line and the exit code of device/errors.py's table."""
    return run_commands(main, SUBCOMMANDS, argv, prog_name=PROG, interrupted=EXIT_INTERRUPTED,
                        interrupted_message="interrupted; finished epochs are saved, continue with --resume")


if __name__ == "__main__":
    exit_with(run())
