"""The ablation table of docs/RESULTS.md: every recipe tried on the official split, side by side.

One row per finished run (and its mirror-image twin when `convert --flip-tta` made one), so a
reader sees what each idea bought at what cost. Model selection used the validation faces carved
from Training; PublicTest is only reported.
"""
from __future__ import annotations

from pathlib import Path

from .collect import Run, g, latency, members, recorded, scores, split_kind
from .text import NOT_RUN, duration, ms, pct, size, table


def recipe_short(cfg: dict) -> str:
    """What sets a recipe apart, in a few words."""
    opt = "Adam" if cfg.get("optimizer", "adam") == "adam" else "SGD+Nesterov"
    sched = cfg.get("lr_schedule", "cosine") + (f" +{cfg['warmup']:.0%} warm-up" if cfg.get("warmup") else "")
    aug = cfg.get("augmentation", "paper") if cfg.get("augment", True) else "no"
    parts = [f"`{cfg.get('model', '?')}`", f"{opt} {cfg.get('lr')} {sched}", f"{aug} augmentation",
             f"batch {cfg.get('batch_size')}", f"class weights {cfg.get('class_weights')}"]
    parts += [f"{label} {cfg[k]}" for k, label in (("erasing", "erasing"), ("label_smoothing", "label smoothing"),
                                                   ("weight_decay", "weight decay")) if cfg.get(k)]
    if cfg.get("teachers"):
        parts.append(f"distilled from {', '.join(f'`{teacher_name(t)}`' for t in cfg['teachers'])} (+ mirrors, "
                     f"weight {cfg.get('distill_weight')}, T {cfg.get('distill_temperature')})")
    if cfg.get("init_from"):
        parts.append(f"started from `{Path(cfg['init_from']).name}`")
    return ", ".join(parts)


def teacher_name(t: str) -> str:
    """A run folder by its name (the table's rows are named so); a converted model (train --teacher
    device/models/default) by its path, which says what it is."""
    return t if t.endswith(".tflite") or t.startswith("device/models/") else Path(t).name


def wrapping_text(r: Run) -> str:
    """What the converted file adds to the run's model: other members, the mirror image."""
    out = f" + the models of {', '.join(f'`{m}`' for m in members(r))} averaged in the file" if members(r) else ""
    return out + (" + mirror-image average in the file" if g(r.report, "run", "flip_tta") else "")


def run_commands(prov: dict) -> list[str]:
    """The command that started the run, then each --resume that changed an option (e.g. --epochs)."""
    if not prov.get("command"):
        return []
    start = sorted(prov.get("argv") or [])
    changed = [c["command"] for c in prov.get("resumed", [])
               if sorted(a for a in c.get("argv") or [] if a != "--resume") != start]
    return [prov["command"], *changed]


def training_commands(prov: dict) -> str:
    """run_commands as one table cell."""
    return "; resumed as ".join(f"`{c}`" for c in run_commands(prov))


def ablation_row(run: Run, r: Run | None = None) -> list[str]:
    """One row: the run's plain conversion, or ``r``, one of its wrapped ones (flip TTA, an ensemble)."""
    r = r or run
    k, i8 = scores(r, "keras"), scores(r, "int8")
    cmd = training_commands(recorded(run.config))
    return [f"`{r.name}`", recipe_short(run.cfg) + wrapping_text(r), cmd or NOT_RUN,
            str(run.metrics.get("epochs_run", "?")),
            duration(run.metrics.get("train_time_s")), pct(k.get("accuracy")),
            pct(scores(r, "float32").get("accuracy")), pct(i8.get("accuracy")), pct(i8.get("macro_f1")),
            size(i8.get("size_bytes")), ms(latency(r, "int8", "bench") or latency(r, "int8", "report"))]


def ablation_section(runs: list[Run]) -> list[str]:
    # FER+ runs are scored on other labels: they have their own table (results/ferplus.py)
    official = [r for r in runs if split_kind(r) == "official" and not r.random_init and r.label_set == "fer2013"]
    if not official:
        return []
    rows = []
    for r in sorted(official, key=lambda r: scores(r.flip or r, "int8").get("accuracy") or 0):
        rows += [ablation_row(r)] + [ablation_row(r, w) for w in [r.flip, *r.ensembles] if w]
    lines = ["## Ablation: recipes tried on the official split", "",
             "Every finished run on the official split (train on Training less a validation tenth, report on "
             "PublicTest), worst to best. Epochs and the kept checkpoint were chosen on the validation faces, "
             "never on PublicTest. Accuracy and macro-F1 on PublicTest; latency: one face, 1 thread, median. "
             "Training times are on the machine named above, often shared with other work.", ""]
    return lines + table(["run", "recipe", "training command", "epochs", "train time", "Keras acc", "float32 acc",
                          "int8 acc", "int8 macro-F1", "int8 size", "int8 ms/face"], rows) + [""]
