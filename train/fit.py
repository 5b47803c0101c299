"""One training run, start to finish: data -> split -> fit (resumable) -> best model -> report.

    from train.config import resolve
    from train.fit import train_run
    train_run(resolve("paper", data="fer2013.csv.gz", model="resnet50", out="runs/r50"))

Phase 1 trains with the backbone frozen (resnet50: the head alone on cached features, see
cache.py); optional phase 2 fine-tunes conv5 at lr/10. After every epoch the run folder gets,
atomically: checkpoint.keras (model + optimizer), history.csv, state.json (epochs done, best),
and best.keras whenever val accuracy improves, so --resume loses at most one epoch.
Model selection uses the val split only; the test split is scored once, at the end.
"""
from __future__ import annotations

import atexit
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from device.atomic import write_json
from device.paths import portable_record

from . import report
from .cache import FeatureBatches, cache_split
from .config import PAPER_CLASS_WEIGHTS, PAPER_CONTEMPT_WEIGHT, ConfigError, TrainConfig, recorded_options
from . import distill, distribute
from .data import Split, load_fer2013
from .finish import finish, save as _save
from .ferplus import LABEL_SETS, describe, load_labels, run_split
from .layers import ScaledL2Normalize, SparseSmoothedCrossentropy  # noqa: F401  (registered for load_model)
from .models import assemble, build_model, build_resnet50_parts, dtype_policy, float32_copy, unfreeze_top
from .registry import MODELS, normalize_weights
from .warm_start import check_init_run, warm_start

DEFAULTS = TrainConfig().to_dict()

# Must match between a run and its --resume: they decide the data, the split or the network.
RESUME_KEYS = ("data", "model", "split", "seed", "init_seed", "val_fraction", "limit", "augment", "augmentation",
               "dropout", "weights", "keep_stem_pool", "cache", "cache_views", "class_weights", "erasing",
               "labels", "ferplus", "label_scheme", "init_from", "teachers", "distill_weight", "distill_temperature",
               "precision")


def train_run(cfg: TrainConfig, provenance: dict | None = None) -> Path:
    """Train ``cfg.model`` on ``cfg.data`` into the run folder ``cfg.out``; returns the folder.
    ``provenance`` (``device.provenance.record`` of the command) is stored in config.json; --resume ignores it.
    ``cfg.distribute`` data-parallel: this process's part of a run over several devices (train/distribute.py)."""
    job = distribute.start(cfg)  # first: a job of several processes forms before any JAX computation
    try:
        return _train_run(cfg, provenance, job)
    except BaseException as e:
        distribute.fail_fast(job, e)  # several processes: one error line, and out at once
        raise


def _train_run(cfg: TrainConfig, provenance: dict | None, job: distribute.Job | None) -> Path:
    out = Path(cfg.out)
    writer = job is None or job.writer  # only process 0 writes the run folder
    state = _prepare_folder(out, cfg, writer)
    keras.utils.set_random_seed(init_seed(cfg))

    ds = load_fer2013(cfg.data)
    fp = load_labels(ds, cfg.labels, cfg.ferplus, cfg.label_scheme)  # None: FER2013's own labels
    split = run_split(ds, fp, cfg.split, cfg.seed, cfg.val_fraction)
    if fp is not None:
        ds = fp.ds
        print(describe(fp, cfg.label_scheme))
    # Checked before config.json is written; a resumed run has its weights already.
    init_model = check_init_run(cfg, ds.sha256) if cfg.init_from and state["epoch"] == 0 else None
    teachers = distill.check_teachers(cfg, ds.sha256, LABEL_SETS[cfg.labels])
    taught_by = distill.fingerprints(teachers)
    if state["epoch"] > 0:
        distill.check_unchanged(out / "config.json", taught_by)
    if cfg.limit:
        split = limit_split(split, cfg.limit, cfg.seed)
    print(split.summary())
    if len(split.val) == 0 or len(split.test) == 0 or len(split.train) == 0:
        raise ConfigError(f"empty split ({split.summary()}); use more data or a larger --limit")
    if writer:  # run folders as runs/NAME: the records are committed (device/paths.py)
        write_json(out / "config.json", portable_record({**_recorded(cfg, job), **_provenance(out, cfg, provenance),
                                                         **taught_by}))

    n_classes = len(LABEL_SETS[cfg.labels])
    # Class weights follow each face's majority label (its top emotion where it has none), whatever the scheme.
    train_w = sample_weights(ds.labels[split.train], cfg.class_weights, n_classes)
    targets = train_targets(cfg, fp, split.train, ds.labels)
    if teachers:
        probs = _teacher_probs(teachers, ds.faces[split.train], out, writer)
        print(distill.describe(probs, ds.labels[split.train], len(teachers)))
        targets = distill.distill_targets(probs, targets, cfg.distill_weight, cfg.distill_temperature)
    data = dict(train=(ds.faces[split.train], targets, train_w),
                val=(ds.faces[split.val], val_targets(cfg, ds.labels[split.val], n_classes)), init_model=init_model,
                job=job)
    history = report.read_history(out / "history.csv")[:state["epoch"]]
    distribute.same_start(job, state["epoch"], out)
    distribute.use(job)  # the models built or loaded from here on span the job's devices
    t0, before = time.time(), state["train_time_s"]  # the time of the sessions before this one (a kill, a Ctrl-C)
    if state["epoch"] < cfg.epochs:
        _phase1(cfg, out, data, state, history)
    if cfg.fine_tune_epochs and state["epoch"] < cfg.epochs + cfg.fine_tune_epochs:
        _phase2(cfg, out, data, state, history)
    distribute.finish(job)  # the test split is scored on one device, by process 0 alone
    if not writer:
        return out
    state["train_time_s"] = before + (time.time() - t0)
    write_json(out / "state.json", state)
    return finish(cfg, out, ds, split, state, history, fp, build=lambda: build_model(
        cfg.model, augment=_augment(cfg), dropout=cfg.dropout, seed=init_seed(cfg), erasing=cfg.erasing,
        num_classes=len(LABEL_SETS[cfg.labels])))


def _recorded(cfg: TrainConfig, job) -> dict:
    """config.json's options, without how this process joined a job (an address, its id, a timeout); a
    distributed run adds its devices and processes."""
    options = recorded_options(cfg)
    return options if job is None else {**options, "distribution": job.record(cfg.batch_size)}


def _teacher_probs(teachers, faces, out: Path, writer: bool):
    """The teachers' outputs; cached in the run folder by process 0 only (the others work in a scratch
    folder, from process 0's cache where they can read it)."""
    if writer:
        return distill.teacher_probs(teachers, faces, out)
    with tempfile.TemporaryDirectory(prefix="ferlite-teachers-") as scratch:
        if (out / distill.CACHE).is_file():
            shutil.copyfile(out / distill.CACHE, Path(scratch) / distill.CACHE)
        return distill.teacher_probs(teachers, faces, Path(scratch))


def _provenance(out: Path, cfg: TrainConfig, provenance: dict | None) -> dict:
    """config.json's provenance: the command that started the run (what remakes it), and for a --resume the
    commands that continued it, under ``resumed``; a run started before provenance existed keeps this one."""
    if not provenance:
        return {}
    saved = (json.loads((out / "config.json").read_text()) if cfg.resume and (out / "config.json").is_file()
             else {}).get("provenance")
    if not saved:
        return {"provenance": provenance}
    return {"provenance": {**saved, "resumed": [*saved.get("resumed", []), provenance]}}


def init_seed(cfg: TrainConfig) -> int:
    """The seed of everything random but the split: --init-seed, else --seed (runs before it had only that)."""
    return cfg.seed if cfg.init_seed is None else cfg.init_seed


def _soft(cfg: TrainConfig) -> bool:
    """Distributions as targets (a dense loss), not integer labels: FER+'s soft scheme, or distillation."""
    return (cfg.labels == "ferplus" and cfg.label_scheme == "soft") or bool(cfg.teachers)


def train_targets(cfg: TrainConfig, fp, idx: np.ndarray, labels: np.ndarray):
    """model.fit's y for the training faces: integer labels, (n, 8) vote distributions (soft), or for pld
    a function epoch -> that epoch's drawn labels."""
    if fp is None:
        return labels[idx]
    if cfg.label_scheme == "pld":
        return lambda epoch: fp.targets(idx, "pld", cfg.seed, epoch)
    return fp.targets(idx, cfg.label_scheme)


def val_targets(cfg: TrainConfig, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Validation is on majority labels; one-hot for the soft scheme, whose loss and accuracy read distributions."""
    return np.eye(n_classes, dtype=np.float32)[labels] if _soft(cfg) else labels


def _prepare_folder(out: Path, cfg: TrainConfig, writer: bool = True) -> dict:
    """Fresh folder, or the saved state of the run to resume; refuses to clobber a finished run.
    Another process than 0 of a distributed run only reads the state (process 0 makes and checks the folder)."""
    fresh = {"epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "train_time_s": 0.0}
    if not writer:
        state_file = out / "state.json"
        return {**fresh, **json.loads(state_file.read_text())} if cfg.resume and state_file.is_file() else fresh
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return fresh
    if not cfg.resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    saved_cfg = out / "config.json"
    if saved_cfg.exists():
        saved = json.loads(saved_cfg.read_text())
        diff = [k for k in RESUME_KEYS  # older runs lack newer keys; a path is compared as a record holds it
                if portable_record(saved.get(k, DEFAULTS.get(k))) != portable_record(cfg.to_dict().get(k))]
        if diff:
            raise ConfigError(f"cannot resume {out}: {', '.join(f'{k} was {saved.get(k)!r}' for k in diff)}")
    state_file = out / "state.json"
    return {**fresh, **json.loads(state_file.read_text())} if state_file.exists() else fresh


def limit_split(split: Split, limit: int, seed: int) -> Split:
    """Keep about ``limit`` rows in all, the same fraction of each side (seeded)."""
    rng = np.random.default_rng(seed + 1)
    total = len(split.train) + len(split.val) + len(split.test)
    f = min(1.0, limit / total)

    def take(idx):
        n = min(len(idx), max(7, int(round(len(idx) * f))))
        return np.sort(rng.choice(idx, n, replace=False))
    return Split(take(split.train), take(split.val), take(split.test), split.kind, split.test_name,
                 split.duplicate_groups, split.dropped)


def sample_weights(labels: np.ndarray, mode: str, n_classes: int = len(PAPER_CLASS_WEIGHTS)) -> np.ndarray | None:
    """Per-sample loss weights: the paper's vector, inverse class frequency ("balanced"), or none."""
    if mode == "none":
        return None
    if mode == "paper":
        w = np.asarray((*PAPER_CLASS_WEIGHTS, PAPER_CONTEMPT_WEIGHT)[:n_classes], np.float32)
        if len(w) != n_classes:
            raise ConfigError(f"the paper's class weights cover {len(w)} classes, not {n_classes}")
    elif mode == "balanced":
        counts = np.bincount(labels, minlength=n_classes).astype(np.float32)
        w = len(labels) / (n_classes * np.maximum(counts, 1))
    else:
        raise ConfigError(f"unknown class weights {mode!r}")
    return w[labels].astype(np.float32)


def _optimizer(cfg: TrainConfig, lr: float) -> keras.optimizers.Optimizer:
    wd = cfg.weight_decay or None
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=True, weight_decay=wd)
    return keras.optimizers.Adam(lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2, weight_decay=wd)


def _compile(model: keras.Model, cfg: TrainConfig, lr: float) -> keras.Model:
    # The plain Keras loss when there is no smoothing, so the paper's runs are exactly what they were;
    # FER+'s soft scheme: cross-entropy against the vote distribution.
    if _soft(cfg):
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    else:
        loss = (SparseSmoothedCrossentropy(cfg.label_smoothing) if cfg.label_smoothing
                else "sparse_categorical_crossentropy")
    model.compile(optimizer=_optimizer(cfg, lr), loss=loss, metrics=["accuracy"])  # metrics unweighted
    return model


def _augment(cfg) -> bool | str:
    return cfg.augmentation if cfg.augment else False


def _batches(faces_or_views, labels, weights, cfg, shuffle, seed_offset=0, job=None) -> dict:
    """model.fit's data arguments. Plain faces go in as arrays: Keras's array adapter is about twice
    as fast here as a PyDataset, which the TF backend feeds through tf.data.from_generator (measured
    at 1.2 s vs 0.65 s per batch of 64 for vgg_cnn on 2 cores). Cached ResNet50 views (a list, one
    view drawn per face per epoch) need the PyDataset."""
    if isinstance(faces_or_views, list):
        return {"x": FeatureBatches(faces_or_views, labels, weights, cfg.batch_size, shuffle, init_seed(cfg) + seed_offset)}
    if job is not None:  # this process's share of each global batch (train/distribute.py)
        return {"x": distribute.batches(faces_or_views[..., None].astype(np.float32), np.asarray(labels),
                                        None if weights is None else np.asarray(weights, np.float32), cfg.batch_size,
                                        job, init_seed(cfg) if shuffle else None, seed_offset),
                "shuffle": False}  # the order is the batches' own: Keras would reorder them per process
    return {"x": faces_or_views[..., None].astype(np.float32), "y": np.asarray(labels),
            "sample_weight": None if weights is None else np.asarray(weights, np.float32),
            "batch_size": cfg.batch_size, "shuffle": shuffle}


def _train_batches(faces_or_views, targets, weights, cfg, first_epoch, job=None) -> dict | object:
    """The training side for model.fit: ``_batches``, or for targets drawn anew each epoch (pld) a function
    epoch -> its batches (the faces converted once; only y changes)."""
    if not callable(targets):
        return _batches(faces_or_views, targets, weights, cfg, True, first_epoch, job)
    fixed = _batches(faces_or_views, targets(first_epoch), weights, cfg, True, first_epoch, job)
    if "y" in fixed:
        return lambda epoch: {**fixed, "y": np.asarray(targets(epoch))}
    return lambda epoch: _batches(faces_or_views, targets(epoch), weights, cfg, True, epoch, job)


def _phase1(cfg, out, data, state, history):
    (tx, ty, tw), (vx, vy) = data["train"], data["val"]
    resuming = state["epoch"] > 0 and (out / "checkpoint.keras").exists()
    if cfg.model == "resnet50" and cfg.cache:
        if resuming:  # the frozen backbone is in best.keras, the head + optimizer in the checkpoint
            best = keras.models.load_model(out / "best.keras")
            augment, backbone = best.get_layer("augment"), best.get_layer("backbone")
            head = keras.models.load_model(out / "checkpoint.keras")
        else:
            dropout = MODELS[cfg.model].dropout if cfg.dropout is None else cfg.dropout
            augment, backbone, head = build_resnet50_parts(normalize_weights(cfg.weights), cfg.keep_stem_pool,
                                                           _augment(cfg), dropout, init_seed(cfg),
                                                           len(LABEL_SETS[cfg.labels]))
            _compile(head, cfg, cfg.lr)
        views, val_feats = cache_split(backbone, augment if cfg.augment else None, tx, vx, out / "cache",
                                       cfg.cache_views if cfg.augment else 1)
        full = assemble(augment, backbone, head)
        _fit(head, lambda: full, _train_batches(views, ty, tw, cfg, state["epoch"]),
             _batches([val_feats], vy, None, cfg, False), cfg.epochs, "frozen", out, state, history,
             _schedule(cfg, cfg.lr, 0, cfg.epochs))
    else:
        def build():
            return build_model(cfg.model, weights=normalize_weights(cfg.weights), keep_stem_pool=cfg.keep_stem_pool,
                               augment=_augment(cfg), dropout=cfg.dropout, seed=init_seed(cfg), erasing=cfg.erasing,
                               num_classes=len(LABEL_SETS[cfg.labels]))
        if resuming:  # the checkpoint keeps each layer's dtype policy
            model = keras.models.load_model(out / "checkpoint.keras")
        else:
            with dtype_policy(cfg.precision):
                model = _compile(build(), cfg, cfg.lr)
            if data["init_model"] is not None:
                print(warm_start(model, data["init_model"], LABEL_SETS[cfg.labels]))
        export = (lambda: model) if cfg.precision == "float32" else (lambda: float32_copy(model, build))
        _fit(model, export, _train_batches(tx, ty, tw, cfg, state["epoch"], data["job"]),
             _batches(vx, vy, None, cfg, False, job=data["job"]), cfg.epochs,
             "frozen" if cfg.model == "resnet50" else "train", out, state, history,
             _schedule(cfg, cfg.lr, 0, cfg.epochs), _writes(data["job"]))


def _phase2(cfg, out, data, state, history):
    """Fine-tune conv5 at lr/10 from the best phase-1 model; BatchNorm stays in inference mode."""
    (tx, ty, tw), (vx, vy) = data["train"], data["val"]
    if state["epoch"] > cfg.epochs and (out / "checkpoint.keras").exists():
        model = keras.models.load_model(out / "checkpoint.keras")
    else:
        model = keras.models.load_model(out / "best.keras")
        if cfg.model == "resnet50":
            print(f"fine-tuning: {unfreeze_top(model)} conv5 layers unfrozen")
        _compile(model, cfg, cfg.lr / 10)
    job = data["job"]
    _fit(model, lambda: model, _train_batches(tx, ty, tw, cfg, state["epoch"], job),
         _batches(vx, vy, None, cfg, False, job=job), cfg.epochs + cfg.fine_tune_epochs, "fine_tune", out, state,
         history, _schedule(cfg, cfg.lr / 10, cfg.epochs, cfg.epochs + cfg.fine_tune_epochs), _writes(job))


def _schedule(cfg, lr, first, last):
    """Linear warm-up over the first ``cfg.warmup`` of epochs [first, last), then cosine decay from
    ``lr``; a pure function of the epoch so --resume lands on the same rate. None keeps the rate
    constant (the paper states no schedule)."""
    if cfg.lr_schedule == "constant" and not cfg.warmup:
        return None
    return keras.callbacks.LearningRateScheduler(lambda epoch, _: lr_at(cfg, lr, first, last, epoch))


def lr_at(cfg, lr, first, last, epoch) -> float:
    span, warm = max(1, last - first), int(round(cfg.warmup * (last - first)))
    e = epoch - first
    if e < warm:
        return float(lr * (e + 1) / (warm + 1))
    if cfg.lr_schedule == "constant":
        return float(lr)
    t = (e - warm) / max(1, span - warm)
    return float(lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))))


def _writes(job) -> bool:
    return job is None or job.writer


def _fit(model, export, train, val, epochs, phase, out, state, history, schedule=None, writer=True):
    # The scheduler runs before the checkpoint callback, so history records the rate actually used.
    cbs = ([schedule] if schedule is not None else []) + [EpochCheckpoint(out, phase, export, state, history, writer)]
    # One line per epoch when logging to a file: a progress bar redrawn per batch bloats the log.
    verbose = 1 if sys.stdout.isatty() else 2
    val_data = val["x"] if "y" not in val else (val["x"], val["y"])
    if not callable(train):
        model.fit(**train, validation_data=val_data, validation_batch_size=val.get("batch_size"), epochs=epochs,
                  initial_epoch=state["epoch"], callbacks=distribute.epoch_callbacks(train) + cbs, verbose=verbose)
        return
    # Labels drawn anew each epoch (pld): one fit call per epoch; the callbacks see the true epoch numbers.
    while state["epoch"] < epochs:
        batches = train(state["epoch"])
        model.fit(**batches, validation_data=val_data, validation_batch_size=val.get("batch_size"),
                  epochs=state["epoch"] + 1, initial_epoch=state["epoch"],
                  callbacks=distribute.epoch_callbacks(batches) + cbs, verbose=verbose)


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: best.keras (full model, on val improvement), checkpoint.keras, history, state.
    ``writer`` False (a distributed run's other processes): the same bookkeeping, nothing written."""

    def __init__(self, out: Path, phase: str, export, state: dict, history: list, writer: bool = True):
        super().__init__()
        self.out, self.phase, self.export, self.state, self.history = out, phase, export, state, history
        self.writer = writer
        # Saving a model spread over several processes gathers its variables from all of them, so every
        # process saves; the others into a scratch folder of their own, removed when the process ends.
        self.models_to = out if writer else Path(tempfile.mkdtemp(prefix="ferlite-replica-"))
        if not writer:
            atexit.register(shutil.rmtree, self.models_to, True)
        self.since = time.time()

    def on_train_begin(self, logs=None):
        self.since = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "phase": self.phase, **{k: float(v) for k, v in logs.items()},
               "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))}
        self.history.append(row)
        val_acc = row.get("val_accuracy", -1.0)
        if val_acc > self.state["best_val_accuracy"]:
            self.state.update(best_val_accuracy=val_acc, best_epoch=epoch + 1)
            _save(self.export(), self.models_to / "best.keras")
        _save(self.model, self.models_to / "checkpoint.keras")
        if self.writer:
            report.write_history(self.out / "history.csv", self.history)
        self.state["epoch"] = epoch + 1
        now = time.time()  # saved with each epoch, so a kill -9 keeps the time of the epochs it did not undo
        self.state["train_time_s"] += now - self.since
        self.since = now
        if self.writer:
            write_json(self.out / "state.json", self.state)  # written last: the epoch counts once all is saved

