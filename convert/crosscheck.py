"""Score a model against both label sources, FER2013's one label per face and FER+'s majority vote,
on the same faces, so a reader sees what the label source changes.

    python -m convert crosscheck --model device/models/default/model_int8.tflite \\
        --data ../shared/data/fer2013/fer2013.csv.gz --json docs/runs/ferplus_crosscheck/default_int8.json

The faces: the rows of one split (``--usage``, default PublicTest = FER+'s FER2013Valid) that FER+
does not mark as not a face. Every figure comes from ``device.metrics.evaluate`` on the 7 emotions
both sets share, in FER2013's order (the first 7 outputs of either kind of model):

- ``fer2013_7``: against FER2013's own labels. A FER+ model's Contempt output is left out of the
  argmax (FER2013 has no Contempt, so every face's label is one of the 7): cross-check (a).
- ``ferplus_7``: against FER+ majority labels (ties, unknown-won faces dropped). Faces whose
  majority is Contempt are left out, and counted (a FER2013 model has no Contempt output):
  cross-check (b) for a FER2013 model.
- ``ferplus_8``: an 8-label (FER+) model against FER+ majority labels on all 8, its own task.

Also: how often the two label sources agree on the ``ferplus_7`` faces. Needs numpy, OpenCV and a
LiteRT interpreter (the device runtime), not TensorFlow. Bad input: one ``error:`` line, exit 3.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from device.atomic import write_json
from device.contract import LABELS
from device.errors import InputError
from device.interpreter import TFLiteClassifier
from device.metrics import evaluate
from device.provenance import file_sha256, record
from device.stderr import quiet_native_stderr
from train.data import USAGES, load_fer2013
from train.ferplus import (FERPLUS_SPLITS, LABELS as FERPLUS_LABELS, default_votes_path, majority_labels, not_face,
                           read_votes)

PROG = "python -m convert crosscheck"
FORMAT = "ferlite-ferplus-crosscheck/1"
SHARED = len(LABELS)  # FER2013's 7 = the first 7 of FER+'s 8 (train/ferplus.py: why that order)
CONTEMPT = FERPLUS_LABELS.index("Contempt")


def shared_scores(probs: np.ndarray, labels: np.ndarray, n_classes: int = SHARED) -> dict:
    """``device.metrics.evaluate`` of precomputed probabilities (the identity as its predict), restricted to
    the first ``n_classes`` outputs: argmax over those only. Rows whose label is outside them must be
    left out by the caller."""
    result = evaluate(lambda p: p[:, :n_classes], probs, labels, class_names=FERPLUS_LABELS[:n_classes])
    result.pop("probs")
    return result


def crosscheck(model: str, data: str, ferplus: str | None, usage: str, threads: int | None) -> dict:
    with quiet_native_stderr():  # LiteRT's delegate banner
        clf = TFLiteClassifier(model, threads=threads)
    if clf.labels[:SHARED] != list(LABELS) or clf.labels not in (list(LABELS), list(FERPLUS_LABELS)):
        raise InputError(f"{model}: labels {clf.labels} are neither FER2013's seven nor FER+'s eight "
                         f"({', '.join(FERPLUS_LABELS)})")
    votes_path = ferplus or default_votes_path(data)
    if votes_path is None:
        raise InputError(f"no FER+ votes file beside {data} or in its ../ferplus/: pass --ferplus PATH")
    ds = load_fer2013(data)
    votes = read_votes(votes_path, ds)
    nf = not_face(votes.counts)
    rows = np.flatnonzero((ds.usage == usage) & ~nf)
    if not len(rows):
        raise InputError(f"{data}: no {usage} faces (that FER+ does not mark as not a face) to score")
    with quiet_native_stderr():  # LiteRT's delegate banner
        probs = clf.predict_batched(ds.faces[rows])
    fer, maj = ds.labels[rows], majority_labels(votes.counts[rows])
    in7 = (maj >= 0) & (maj < SHARED)
    # model_sha256: which bytes were scored, so a record of a replaced model reads as stale (tests/test_shipped_records.py)
    out = {"format": FORMAT, "model": str(model), "model_sha256": file_sha256(model), "model_labels": clf.labels,
           "data": str(data),
           "data_sha256": ds.sha256, "ferplus": str(votes_path), "ferplus_sha256": votes.sha256, "usage": usage,
           "ferplus_split": FERPLUS_SPLITS[usage],
           "faces": {"in_split": int((ds.usage == usage).sum()), "not_a_face": int((nf & (ds.usage == usage)).sum()),
                     "scored": len(rows), "no_ferplus_majority": int((maj < 0).sum()),
                     "ferplus_majority_contempt": int((maj == CONTEMPT).sum()), "ferplus_7": int(in7.sum())},
           "contempt": "left out of the 7-way argmax (model output); faces whose FER+ majority is Contempt are left "
                       "out of ferplus_7",
           "label_agreement_fer2013_vs_ferplus_7": float((fer[in7] == maj[in7]).mean()) if in7.any() else None,
           "scores": {"fer2013_7": shared_scores(probs, fer), "ferplus_7": shared_scores(probs[in7], maj[in7])}}
    if len(clf.labels) == len(FERPLUS_LABELS) and (maj >= 0).any():
        out["scores"]["ferplus_8"] = shared_scores(probs[maj >= 0], maj[maj >= 0], len(FERPLUS_LABELS))
    return out


def summary(r: dict) -> str:
    f = r["faces"]
    lines = [f"{r['model']} ({len(r['model_labels'])} labels) on {f['scored']} {r['usage']} ({r['ferplus_split']}) "
             f"faces ({f['not_a_face']} FER+ not-a-face rows left out):"]
    what = {"fer2013_7": "FER2013 labels, 7 shared emotions",
            "ferplus_7": f"FER+ majority, 7 shared emotions ({f['ferplus_majority_contempt']} Contempt and "
                         f"{f['no_ferplus_majority']} no-majority faces left out)",
            "ferplus_8": "FER+ majority, all 8 emotions"}
    for key, s in r["scores"].items():
        lines.append(f"  {what[key]}: accuracy {100 * s['accuracy']:.2f}%, macro-F1 {100 * s['macro_f1']:.2f}% "
                     f"(n={s['n']})")
    if r["label_agreement_fer2013_vs_ferplus_7"] is not None:
        lines.append(f"  FER2013 label = FER+ majority on {100 * r['label_agreement_fer2013_vs_ferplus_7']:.1f}% "
                     "of the ferplus_7 faces")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", required=True, help=".tflite model with its metadata.json beside it.")
@click.option("--data", required=True, help="FER2013 .csv / .csv.gz (the file the votes are aligned with).")
@click.option("--ferplus", help="FER+ votes file [default: ferplus_labels.csv beside --data or in ../ferplus].")
@click.option("--usage", type=click.Choice(USAGES), default="PublicTest", show_default=True, help="The split scored.")
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures and what ran here.")
@click.pass_context
def cli(ctx, model, data, ferplus, usage, threads, json_path):
    """Score a model against FER2013's labels and FER+'s majority votes on the same faces."""
    result = crosscheck(model, data, ferplus, usage, threads)
    result["provenance"] = record(PROG, ctx.obj, ctx.params)
    click.echo(summary(result))
    if json_path:
        write_json(json_path, result)
        click.echo(f"wrote {json_path}")
