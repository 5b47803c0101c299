"""Train several seeds of one recipe side by side on a lent GPU machine, inside a wall-clock budget.

    python scripts/device_train.py --budget 540 --seeds 21,22,23,24 --epochs 150 --runs /root/ferlite-runs \
        --name vgg_cnn-gpu-s{seed} --teacher-cache teacher_probs.npz --pack "$OUT" -- \
        --data ../shared/data/fer2013/fer2013.csv.gz --preset best --teacher ... --precision mixed_bfloat16

Each seed is one ordinary ``python -m train`` process (the arguments after ``--``, plus ``--init-seed``,
``--epochs`` and ``--out``), so its run folder is what a CPU run would write. Why several at once: a
1.2M-parameter CNN on 48x48 faces leaves an H200 mostly idle; the processes share it.

Why the budget logic: device time is lent by the minute and the speed is unknown until it runs. Once
every run has finished its first few epochs, the epoch time is measured and, if the planned epochs
would overrun the budget (or leave much of it unused), the runs are stopped between epochs and
continued with ``--resume --epochs N`` (the cosine schedule is a pure function of the epoch, so only
the warm-up and decay stretch; the run's config.json records both commands). A run still going at the
deadline is stopped with SIGTERM, its finished epochs saved, and packed with its checkpoint so it can
be resumed elsewhere.

``--teacher-cache``: a ``teacher_probs.npz`` made on the CPU machine (the teachers' outputs, train/
distill.py). It is copied into each new run folder, and the teacher files it names get the mtimes its
key records, so the students read it instead of running LiteRT, which the GPU machine lacks. The runs
are then started with ``--resume`` (a folder holding only the cache is not empty; nothing else is
resumed). ``--pack DIR``: one .tar per run, without the cache and, for a finished run, without the
checkpoints (the files come back through a small pipe).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import click
import numpy as np

POLL_S = 2.0
FINISH_RESERVE_S = 45.0  # the final evaluation, plots and packing after the last epoch
MEASURE_AT = 3           # epochs every run has finished before the epoch time is read


class Run:
    def __init__(self, seed: int, out: Path, train_args: list[str]):
        self.seed, self.out, self.train_args = seed, out, train_args
        self.proc: subprocess.Popen | None = None
        self.epoch_times: dict[int, float] = {}
        self.started = 0.0
        self.log = out.parent / f"{out.name}.log"

    def start(self, epochs: int, resume: bool) -> None:
        cmd = [sys.executable, "-m", "train", *self.train_args, "--init-seed", str(self.seed),
               "--epochs", str(epochs), "--out", str(self.out)] + (["--resume"] if resume else [])
        log = open(self.log, "a")
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def epoch(self) -> int:
        try:
            return json.loads((self.out / "state.json").read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return 0

    def poll(self) -> None:
        e = self.epoch()
        self.epoch_times.setdefault(e, time.time())

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()


def stage_cache(cache: Path, runs: list[Run]) -> None:
    """Give the teacher files the identity the cache's key names, and put the cache in each new run."""
    with np.load(cache) as saved:
        key = json.loads(str(saved["key"]))
    for path, size, mtime_ns in key[:-1]:
        p = Path(path)
        if not p.is_file() or p.stat().st_size != size:
            raise click.ClickException(f"--teacher-cache {cache}: teacher {p} missing or not {size} bytes")
        os.utime(p, ns=(mtime_ns, mtime_ns))
    for run in runs:
        run.out.mkdir(parents=True, exist_ok=True)
        if not (run.out / "state.json").exists():
            shutil.copyfile(cache, run.out / "teacher_probs.npz")  # train/distill.py CACHE


def epoch_time(runs: list[Run]) -> float | None:
    """Median seconds per epoch over runs that finished epochs MEASURE_AT-1 and MEASURE_AT (no compile in it)."""
    spans = [r.epoch_times[MEASURE_AT] - r.epoch_times[MEASURE_AT - 1] for r in runs
             if MEASURE_AT in r.epoch_times and MEASURE_AT - 1 in r.epoch_times]
    return float(np.median(spans)) if len(spans) == len(runs) else None


def fit_epochs(runs: list[Run], deadline: float, per_epoch: float) -> int:
    """Epochs that fit before the deadline, counting a restart's start-up (measured on the first launch)."""
    startup = max(r.epoch_times[1] - r.started for r in runs) - per_epoch
    left = deadline - FINISH_RESERVE_S - time.time() - startup
    done = min(r.epoch() for r in runs)
    return max(done + 1, done + int(left // per_epoch))


def pack(run: Run, folder: Path) -> Path:
    finished = (run.out / "metrics.json").is_file()  # written last by train
    skip = {"teacher_probs.npz"} | ({"checkpoint.keras", "best.keras"} if finished else set())
    dest = folder / f"{run.out.name}.tar"
    with tarfile.open(dest, "w") as tar:
        for f in sorted(run.out.rglob("*")):
            if f.is_file() and f.name not in skip:
                tar.add(f, arcname=f"{run.out.name}/{f.relative_to(run.out)}")
        tar.add(run.log, arcname=run.log.name)
    return dest


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--budget", type=float, required=True, help="Wall-clock seconds from now to the last packed file.")
@click.option("--seeds", required=True, help="Comma-separated --init-seed values, one run each.")
@click.option("--epochs", type=int, required=True, help="Planned epochs (adjusted once to fit the budget).")
@click.option("--runs", type=click.Path(path_type=Path), required=True, help="Folder of the run folders.")
@click.option("--name", default="run-s{seed}", help="Run folder name; {seed} is replaced.")
@click.option("--teacher-cache", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--pack", "pack_dir", type=click.Path(path_type=Path), default=None)
@click.option("--max-epochs", type=int, default=300, help="The most epochs an adjustment may plan.")
@click.option("--no-adjust", is_flag=True, help="Keep --epochs whatever the measured speed.")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
def main(budget, seeds, epochs, runs, name, teacher_cache, pack_dir, max_epochs, no_adjust, train_args):
    deadline = time.time() + budget
    runs_ = [Run(int(s), runs / name.format(seed=int(s)), list(train_args)) for s in seeds.split(",")]
    if teacher_cache:
        stage_cache(teacher_cache, runs_)
    for r in runs_:
        r.out.parent.mkdir(parents=True, exist_ok=True)
        r.start(epochs, resume=teacher_cache is not None or (r.out / "state.json").exists())
    adjusted, said = no_adjust, time.time()
    while any(r.running() for r in runs_):
        time.sleep(POLL_S)
        if time.time() - said > 60:
            said = time.time()
            print(f"{said - deadline + budget:.0f} s: epochs {[r.epoch() for r in runs_]} of {epochs}", flush=True)
        for r in runs_:
            r.poll()
        per_epoch = epoch_time(runs_)
        if not adjusted and per_epoch:
            adjusted = True
            target = min(max_epochs, fit_epochs(runs_, deadline, per_epoch))
            print(f"{per_epoch:.1f} s per epoch with {len(runs_)} runs side by side: {target} epochs fit "
                  f"(planned {epochs})", flush=True)
            if target < 0.97 * epochs or target > 1.1 * epochs:
                for r in runs_:
                    r.stop()
                epochs = target
                for r in runs_:
                    r.start(epochs, resume=True)
        if time.time() > deadline - FINISH_RESERVE_S / 3:
            print("deadline: stopping the runs still going (finished epochs are saved)", flush=True)
            for r in runs_:
                r.stop()
    for r in runs_:
        print(f"{r.out.name}: epoch {r.epoch()} of {epochs}, exit {r.proc.returncode}", flush=True)
    if pack_dir:
        pack_dir.mkdir(parents=True, exist_ok=True)
        for r in runs_:
            print(f"packed {pack(r, pack_dir)}", flush=True)


if __name__ == "__main__":
    main()
