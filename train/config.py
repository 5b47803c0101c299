"""Every training default and preset in one place.

A run is fully described by a TrainConfig; it is saved as ``config.json`` beside the
artefacts, and ``convert`` re-creates the data split from its data/split/seed/val_fraction.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from device.errors import UsageError

from .ferplus import LABEL_SETS, SCHEMES

# The paper's class weights (sec. 3), in LABELS order: Angry Disgust Fear Happy Sad Surprise Neutral.
PAPER_CLASS_WEIGHTS = (0.1, 0.3, 0.3, 1.0, 0.3, 0.3, 0.1)
# FER+'s eighth class has no paper weight: Contempt gets the 0.3 the paper gives every class but
# Happy, Angry and Neutral (a rare class, like Disgust). Used by --class-weights paper with --labels ferplus.
PAPER_CONTEMPT_WEIGHT = 0.3
CLASS_WEIGHTS = ("paper", "balanced", "none")
SPLITS = ("official", "random80")
LR_SCHEDULES = ("cosine", "constant")
OPTIMIZERS = ("adam", "sgd")
AUGMENTATIONS = ("paper", "crop", "field", "field_jpeg")  # train/augment.py builds each
PRECISIONS = ("float32", "mixed_bfloat16")  # Keras dtype policies; model.keras is always float32
# Which epoch becomes model.keras: the best on the clean validation faces, or the last one. "last" is for
# runs whose aim the clean validation accuracy does not measure (a fine-tune for degraded faces).
KEEPS = ("best", "last")
LABEL_SOURCES = tuple(LABEL_SETS)   # fer2013: the file's own labels; ferplus: FER+ votes (train/ferplus.py)
DISTRIBUTE_MODES = ("none", "data-parallel")  # train/distribute.py: Keras's DataParallel, JAX backend


class ConfigError(UsageError):
    """A training option has a value that cannot work."""


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    model: str = "vanilla_cnn"
    preset: str = "baseline"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "cosine"           # cosine | constant
    warmup: float = 0.0                   # fraction of the epochs spent ramping the rate up linearly
    optimizer: str = "adam"               # adam | sgd (SGD with Nesterov momentum)
    beta_1: float = 0.9                   # adam
    beta_2: float = 0.999                 # adam
    momentum: float = 0.9                 # sgd
    weight_decay: float = 0.0             # decoupled, as Keras optimizers apply it
    label_smoothing: float = 0.0
    erasing: float = 0.0                  # random-erasing probability per training face
    class_weights: str = "balanced"       # paper | balanced | none
    split: str = "official"               # official | random80
    seed: int = 0                         # the split; also the weights' and augmentation's unless init_seed is set
    init_seed: int | None = None          # weights, augmentation, shuffling: another ensemble member on the same split
    val_fraction: float = 0.1
    augment: bool = True
    augmentation: str = "paper"           # paper | crop | field | field_jpeg (train/augment.py)
    dropout: float | None = None          # None: the model's own default
    weights: str | None = "imagenet"      # resnet50 only: imagenet | none | a local weights file
    keep_stem_pool: bool = False
    fine_tune_epochs: int = 0             # phase 2: conv5 unfrozen at lr / 10
    cache: bool = True                    # resnet50 phase 1 trains the head on cached backbone features
    cache_views: int = 2                  # augmented views cached per training face (view 0 is plain)
    resume: bool = False
    limit: int | None = None              # subsample to about this many rows (smoke runs)
    labels: str = "fer2013"               # fer2013 | ferplus (train/ferplus.py: 8 classes, Contempt last)
    ferplus: str | None = None            # the FER+ votes file, line-aligned with data (labels ferplus)
    label_scheme: str = "majority"        # majority | soft | pld (FER+ only; see train/ferplus.py)
    init_from: str | None = None          # a finished run whose weights start this one (train/warm_start.py)
    teachers: list[str] | None = None     # finished runs or .tflite models distilled into this one (train/distill.py)
    distill_weight: float = 0.7           # the teachers' share of each target; the rest is the one-hot label
    distill_temperature: float = 1.0      # >1 softens the teachers' probabilities, <1 sharpens them
    precision: str = "float32"            # mixed_bfloat16: bf16 math, float32 weights (AMX CPUs, GPUs)
    keep: str = "best"                    # best | last: the epoch that becomes model.keras
    # Launch, not recipe: none is one device; data-parallel is every device of the job (train/distribute.py).
    # The other four are how this process joins a job of several; config.json records the devices instead.
    distribute: str = "none"              # none | data-parallel
    coordinator: str | None = None        # process 0's HOST:PORT, the same on every process
    num_processes: int | None = None      # processes in the job (None: 1)
    process_id: int | None = None         # this process, 0..num_processes-1; 0 writes the run folder
    distribute_timeout: int = 120         # s to wait for every process to join, or for a silent one
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Each preset is named for what it is. "default" used to name the quick baseline, which is not the
# shipped default model's recipe ("best" was), so the main job (scripts/main.sh) trained the weaker
# recipe unless told otherwise; the main job now trains ``shipped`` unless PRESET says otherwise, and
# ``python -m train`` without --preset stays on the quick ``baseline`` (minutes on a CPU: smoke runs, tests).
PRESETS = {
    # A quick baseline: vanilla_cnn, Adam 1e-3 with cosine, balanced weights for Disgust, official split.
    "baseline": {},
    # Paper sec. 3, Table 1: Adam(1e-4, 0.9, 0.999), 60 epochs, batch 32, weighted CE, random 80/20.
    "paper": dict(lr=1e-4, beta_1=0.9, beta_2=0.999, epochs=60, batch_size=32,
                  class_weights="paper", augment=True, split="random80", lr_schedule="constant"),
    # The shipped default model's recipe (docs/RESULTS.md, ablation): VGG-shaped CNN, SGD + Nesterov with
    # warm-up and cosine, weight decay, label smoothing, random crops of the padded face and flips
    # (66.5% on PublicTest at 40 epochs, 68.4% with the mirror image; the shipped model adds distillation
    # and random erasing on top, device/models/default/README.md).
    "shipped": dict(model="vgg_cnn", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, warmup=0.05,
                    label_smoothing=0.1, augmentation="crop", class_weights="none", epochs=40, batch_size=64),
}
# The old names, which committed records (config.json "preset"), their commands and scripts still use.
PRESET_ALIASES = {"default": "baseline", "best": "shipped"}


# How one process joins a distributed job: not part of what a run is, so config.json leaves it out.
LAUNCH_OPTIONS = ("coordinator", "num_processes", "process_id", "distribute_timeout")


def recorded_options(cfg: TrainConfig) -> dict:
    """The options config.json (and the command's provenance) records: all but LAUNCH_OPTIONS."""
    return {k: v for k, v in cfg.to_dict().items() if k not in LAUNCH_OPTIONS}


def resolve(preset: str = "baseline", **overrides) -> TrainConfig:
    """Defaults <- preset <- overrides (None means "not given"), then validated; an old name gives its new one."""
    preset = PRESET_ALIASES.get(preset, preset)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (expected one of {', '.join(PRESETS)})")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(values) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
    cfg = TrainConfig(preset=preset, **values)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    from .registry import MODELS
    checks = [
        (cfg.model in MODELS, f"model must be one of {', '.join(MODELS)}, got {cfg.model!r}"),
        (cfg.epochs >= 0 and cfg.fine_tune_epochs >= 0, "epochs must be >= 0"),
        (cfg.epochs + cfg.fine_tune_epochs > 0, "nothing to train: epochs + fine_tune_epochs is 0"),
        (cfg.batch_size > 0, f"batch size must be > 0, got {cfg.batch_size}"),
        (cfg.lr > 0, f"learning rate must be > 0, got {cfg.lr}"),
        (cfg.lr_schedule in LR_SCHEDULES, f"lr schedule must be one of {', '.join(LR_SCHEDULES)}"),
        (cfg.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
        (0 <= cfg.warmup < 1, f"warmup must be a fraction of the epochs in [0, 1), got {cfg.warmup}"),
        (0 <= cfg.label_smoothing < 1, f"label smoothing must be in [0, 1), got {cfg.label_smoothing}"),
        (cfg.augmentation in AUGMENTATIONS, f"augmentation must be one of {', '.join(AUGMENTATIONS)}"),
        (0 <= cfg.erasing <= 1, f"erasing must be a probability, got {cfg.erasing}"),
        (cfg.weight_decay >= 0, f"weight decay must be >= 0, got {cfg.weight_decay}"),
        (cfg.class_weights in CLASS_WEIGHTS, f"class weights must be one of {', '.join(CLASS_WEIGHTS)}"),
        (cfg.split in SPLITS, f"split must be one of {', '.join(SPLITS)}, got {cfg.split!r}"),
        (0 < cfg.val_fraction < 1, f"val fraction must be in (0, 1), got {cfg.val_fraction}"),
        (cfg.cache_views >= 1, f"cache views must be >= 1, got {cfg.cache_views}"),
        (cfg.limit is None or cfg.limit >= 14, "limit must be at least 14 rows"),
        (cfg.labels in LABEL_SOURCES, f"labels must be one of {', '.join(LABEL_SOURCES)}, got {cfg.labels!r}"),
        (cfg.label_scheme in SCHEMES, f"label scheme must be one of {', '.join(SCHEMES)}, got {cfg.label_scheme!r}"),
        (cfg.labels == "ferplus" or cfg.label_scheme == "majority",
         f"--label-scheme {cfg.label_scheme} needs --labels ferplus (FER2013 has one label per face)"),
        (cfg.labels == "ferplus" or not cfg.ferplus, "--ferplus needs --labels ferplus"),
        (cfg.labels != "ferplus" or bool(cfg.ferplus), "--labels ferplus needs --ferplus PATH (the FER+ votes file)"),
        (cfg.init_from is None or cfg.model != "resnet50",
         "--init-from is for the CNNs trained from scratch (resnet50 starts from its --weights)"),
        (not cfg.teachers or cfg.label_scheme == "majority",
         f"--teacher needs one label per face (--label-scheme {cfg.label_scheme} has its own soft targets)"),
        (0 <= cfg.distill_weight <= 1, f"distill weight must be in [0, 1], got {cfg.distill_weight}"),
        (cfg.distill_temperature > 0, f"distill temperature must be > 0, got {cfg.distill_temperature}"),
        (cfg.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}"),
        (cfg.keep in KEEPS, f"keep must be one of {', '.join(KEEPS)}, got {cfg.keep!r}"),
        (cfg.keep == "best" or cfg.model != "resnet50", "--keep last is for the CNNs trained end to end"),
        (cfg.precision == "float32" or cfg.model != "resnet50",
         "--precision mixed_bfloat16 is for the CNNs trained from scratch (resnet50 trains in float32)"),
        *_distribute_checks(cfg),
        (bool(cfg.data), "no data path given"),
        (bool(cfg.out), "no output folder given"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def _distribute_checks(cfg: TrainConfig) -> list:
    n = cfg.num_processes or 1
    return [
        (cfg.distribute in DISTRIBUTE_MODES, f"distribute must be one of {', '.join(DISTRIBUTE_MODES)}"),
        (cfg.distribute != "none" or (n == 1 and cfg.process_id is None and cfg.coordinator is None),
         "--num-processes, --process-id and --coordinator need --distribute data-parallel"),
        (n == 1 or bool(cfg.coordinator), f"{n} processes need --coordinator HOST:PORT (process 0's address)"),
        (n == 1 or cfg.process_id is not None, f"{n} processes need --process-id (0..{n - 1}) on each"),
        (cfg.process_id is None or 0 <= cfg.process_id < n,
         f"--process-id must be in 0..{n - 1} for {n} process(es), got {cfg.process_id}"),
        (cfg.distribute_timeout > 0, f"distribute timeout must be > 0 s, got {cfg.distribute_timeout}"),
        (cfg.distribute == "none" or not (cfg.model == "resnet50" and cfg.cache),
         "--distribute data-parallel trains resnet50 with --no-cache (the feature cache is one process's)"),
    ]
