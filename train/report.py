"""What a run leaves for people: metrics.json, history.csv, curves.png, confusion.png (all atomic)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from device.atomic import atomic_path, write_json, write_text  # noqa: E402
from device.contract import LABELS  # noqa: E402


def write_history(path: Path, history: list[dict]) -> None:
    """One row per epoch (epoch, phase, loss, accuracy, val_loss, val_accuracy, lr, ...)."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    write_text(path, buf.getvalue())


def read_history(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (v if k == "phase" else float(v) if "." in v or "e" in v else int(v))
             for k, v in row.items() if v != ""} for row in rows]


def plot_curves(path: Path, history: list[dict]) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [h["epoch"] for h in history]
    for ax, key in zip(axes, ("accuracy", "loss")):
        for prefix, label in (("", "train"), ("val_", "val")):
            ys = [h.get(prefix + key, np.nan) for h in history]
            ax.plot(epochs, ys, marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_confusion(path: Path, confusion, title: str, labels=LABELS) -> Path:
    """Row-normalised confusion matrix (colour: recall per true class) with counts, as a PNG."""
    cm = np.asarray(confusion, np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax)
    _save(fig, Path(path))
    return Path(path)


def write_metrics(path: Path, metrics: dict) -> None:
    write_json(path, {k: v for k, v in metrics.items() if k != "probs"})


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
