"""``train --init-from RUN``: start a run from a finished run's weights instead of a random initialisation.

What it is for: a FER+ model (8 classes) started from a FER2013 model (7), which reaches in a few epochs
what a random start needs tens for. Every layer with weights is copied, in order; the output layer
("probs") is copied label by label, by name, so Angry..Neutral start where the FER2013 model left them and
Contempt, which it never saw, keeps its fresh initialisation. The optimizer, the schedule and everything
else come from this run's own flags.

Why the checks: the other run must have held out the same faces (same data, split, seed, val fraction;
a FER+ run narrows FER2013's split, train/ferplus.py ``run_split``), or its training faces could be this
run's validation or test faces, and the reported accuracy would be inflated by memory.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras

from device.errors import InputError

from .config import ConfigError, TrainConfig
from .registry import MODELS

HELD_OUT_KEYS = ("split", "seed", "val_fraction")  # with the data's sha256, what decides the held-out faces
HEAD = "probs"


class WarmStartError(ConfigError):
    """--init-from names a run this run cannot start from; the message says why."""


def check_init_run(cfg: TrainConfig, data_sha256: str) -> Path:
    """The model file of ``cfg.init_from``, once it is known to be a finished run of the same network
    that held out the same faces; else WarmStartError."""
    model, saved = check_same_faces(Path(cfg.init_from), cfg, data_sha256, "--init-from")
    if saved.get("model") not in (cfg.model, MODELS[cfg.model].weights_of):  # e.g. vgg_cnn_norm from vgg_cnn
        raise WarmStartError(f"--init-from {cfg.init_from}: it is a {saved.get('model')}, this run trains a "
                             f"{cfg.model} (pass --model {saved.get('model')})")
    return model


def check_same_faces(run: Path, cfg: TrainConfig, data_sha256: str, flag: str) -> tuple[Path, dict]:
    """``run``'s model file and saved config, once it is known to be a finished run that held out the faces
    this run holds out (so none of this run's validation or test faces were its training faces)."""
    model = run / "model.keras"
    if not model.is_file():  # bad input (exit 3); a run that held out other faces is a usage error (exit 2)
        raise InputError(f"{flag} {run}: no model.keras there (not a finished training run)")
    try:
        saved = json.loads((run / "config.json").read_text())
        meta = json.loads((run / "metadata.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{flag} {run}: cannot read its config.json / metadata.json ({e})") from None
    default = TrainConfig().to_dict()  # runs older than a key were trained at its default
    diff = [f"{k} was {saved.get(k, default[k])!r}" for k in HELD_OUT_KEYS if saved.get(k, default[k]) != getattr(cfg, k)]
    if (meta.get("data") or {}).get("sha256") != data_sha256:
        diff.append("its data file differs (sha256)")
    if diff:
        raise WarmStartError(f"{flag} {run}: it held out other faces ({', '.join(diff)}), so its training "
                             "faces could be this run's validation or test faces")
    return model, saved


def layers_with_weights(model: keras.Model) -> list:
    return [layer for layer in model.layers if layer.trainable_weights]


def copy_head(src, dst, src_labels, dst_labels) -> int:
    """The output layer, column by column for the labels both sets have; returns how many were copied."""
    (sk, sb), (dk, db) = src.get_weights(), dst.get_weights()
    if sk.shape[0] != dk.shape[0]:
        raise WarmStartError(f"--init-from: the output layers take {sk.shape[0]} and {dk.shape[0]} features")
    shared = [(src_labels.index(lab), j) for j, lab in enumerate(dst_labels) if lab in src_labels]
    for i, j in shared:
        dk[:, j], db[j] = sk[:, i], sb[i]
    dst.set_weights([dk, db])
    return len(shared)


def transfer_weights(src: keras.Model, dst: keras.Model, src_labels, dst_labels) -> str:
    """Copy ``src``'s weights into ``dst`` (same network, maybe another label set); returns a one-line summary."""
    pairs = list(zip(layers_with_weights(src), layers_with_weights(dst)))
    if len(layers_with_weights(src)) != len(layers_with_weights(dst)) or any(type(a) is not type(b) for a, b in pairs):
        raise WarmStartError("--init-from: the two networks have different layers")
    shared = 0
    for a, b in pairs:
        if b.name == HEAD:
            shared = copy_head(a, b, list(src_labels), list(dst_labels))
            continue
        shapes = [w.shape for w in a.get_weights()], [w.shape for w in b.get_weights()]
        if shapes[0] != shapes[1]:
            raise WarmStartError(f"--init-from: layer {b.name} has weights {shapes[0]} there, {shapes[1]} here")
        b.set_weights(a.get_weights())
    fresh = [lab for lab in dst_labels if lab not in src_labels]
    return (f"weights from {len(pairs) - 1} layers and {shared} of {len(dst_labels)} outputs"
            + (f" (new: {', '.join(fresh)})" if fresh else ""))


def warm_start(model: keras.Model, model_path: Path, labels) -> str:
    """Load the finished run's model and copy its weights into ``model``; its labels come from its metadata."""
    try:
        src = keras.models.load_model(model_path, compile=False)
    except Exception as e:  # a corrupt or foreign file: one line naming it, not a traceback
        raise InputError(f"--init-from: cannot load {model_path} ({type(e).__name__}: {e})") from None
    src_labels = json.loads((model_path.parent / "metadata.json").read_text())["labels"]
    summary = transfer_weights(src, model, src_labels, labels)
    return f"started from {model_path.parent}: {summary}"

