"""Choose what to ship on the validation faces, never on the test split: each run alone, with the
mirror image, and the runs' ensemble, scored on the first run's validation faces.

    python -m convert select RUN [RUN2 ...] [--reference device/models/default] [--json out.json]

The runs must share labels, data and split (``convert --member``'s rule), so the validation faces
are none of theirs' training faces. Keras models, the one shared ``device.metrics.evaluate``; the
candidate with the best validation accuracy is what to convert (``python -m convert RUN --int8
[--flip-tta] [--member RUN2]``) and ship. PublicTest is reported by convert, never looked at here.
``--reference MODEL`` scores a converted model (the shipped default: a .tflite file or its folder) on the
same faces, run by LiteRT as the Pi runs it, so a candidate is weighed against what it would replace;
it is shown, never chosen. Each reference is also paired with the best candidate (and a second one with
the first, e.g. a candidate's own int8 file against the shipped one): the faces only one of the two gets
right, and McNemar's z of their difference, since near-twins differ on few faces and a few faces' gap
is noise.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import click

PROG = "python -m convert select"


def candidates(n: int) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name, member indices, flip): every non-empty subset of the runs, plain and mirrored, smallest first.

    A subset is scored from the per-run probabilities computed once, so trying every pair and triple
    of a few runs costs no more model passes than trying their full ensemble.
    """
    rows = []
    for size in range(1, n + 1):
        for members in itertools.combinations(range(n), size):
            base = (f"run {members[0] + 1}" if size == 1 else
                    f"ensemble of {n}" if size == n else "runs " + "+".join(str(i + 1) for i in members))
            rows += [(base + (" + flip" if flip else ""), members, flip) for flip in (False, True)]
    return rows


def view_probs(predict, faces):
    """(probabilities on the faces, on their mirror images alone): MirrorFaces flips the width axis."""
    import numpy as np
    return predict(faces), predict(np.ascontiguousarray(faces[:, :, ::-1]))


def mean_probs(probs: dict, members, flip: bool):
    """A candidate's probabilities: the mean over its members' views, exactly what averaged() puts in the file."""
    views = [probs[i, f] for i in members for f in ((False, True) if flip else (False,))]
    return sum(views) / len(views), len(views)


def paired(this, other) -> dict:
    """Two models' per-face correctness on the same faces: the faces only one of them gets right, and
    their difference over its standard error (McNemar's z). Only these faces can tell two models apart,
    and with |z| under about 2 the gap is within what chance moves between such near-twins."""
    a, b = int((this & ~other).sum()), int((other & ~this).sum())
    return {"only_this_right": a, "only_other_right": b, "z": (a - b) / math.sqrt(a + b) if a + b else 0.0}


def select(runs: list[str], data: str | None = None, references=()) -> tuple[list[dict], list[dict]]:
    from convert import calibration as cal
    from convert import quiet_tensorflow
    quiet_tensorflow()  # TF's C++ import banner would turn a refused run below into five lines
    from convert.pipeline import check_member, check_run_dir, load_keras_model, read_config
    from convert.report import keras_predict
    from device.metadata import read_metadata
    from device.metrics import confusion_matrix, scores_from_confusion

    first = check_run_dir(runs[0])
    meta, cfg = read_metadata(first), read_config(first)
    labels = list(meta["labels"])
    dirs = [first] + [check_member(r, first, meta, cfg) for r in runs[1:]]
    rd = cal.load_run_data(first, cfg, meta, data)
    faces, truth = cal.preprocess(rd.faces[rd.val]), rd.labels[rd.val]
    probs = {}  # (run, mirrored) -> probabilities, computed once for every candidate
    for i, d in enumerate(dirs):
        probs[i, False], probs[i, True] = view_probs(keras_predict(load_keras_model(d / "model.keras", len(labels))),
                                                     faces)
    rows = []
    for name, members, flip in candidates(len(dirs)):
        p, passes = mean_probs(probs, members, flip)
        scores = scores_from_confusion(confusion_matrix(truth, p.argmax(1), len(labels)), labels)
        rows.append({"candidate": name, "runs": [str(dirs[i]) for i in members], "flip_tta": flip,
                     "val_accuracy": scores["accuracy"], "val_macro_f1": scores["macro_f1"], "n": scores["n"],
                     "passes_per_face": passes, "correct": p.argmax(1) == truth})
    return rows, [reference(Path(m), cfg, rd.sha256, labels, faces, truth) for m in references]


def reference(model, cfg: dict, data_sha256: str, labels, faces, truth) -> dict:
    """A converted model's row: checked to have held out these faces (train --teacher's rule), run by LiteRT."""
    from types import SimpleNamespace

    from device.errors import InputError
    from device.interpreter import TFLiteClassifier
    from device.metrics import evaluate
    from train.distill import check_converted, converted_model

    tflite = converted_model(model, "--reference")
    if tflite is None:
        raise InputError(f"--reference {model}: no .tflite model there")
    held_out = SimpleNamespace(**{k: cfg[k] for k in ("split", "seed", "val_fraction")})
    if list(check_converted(tflite, held_out, data_sha256, "--reference") or ()) != list(labels):
        raise InputError(f"--reference {model}: it predicts other labels than the runs")
    clf = TFLiteClassifier(tflite)
    scores = evaluate(clf.predict, faces, truth, class_names=labels)
    return {"candidate": f"reference {model}", "model": str(tflite), "val_accuracy": scores["accuracy"],
            "val_macro_f1": scores["macro_f1"], "n": scores["n"], "correct": scores["probs"].argmax(1) == truth}


def pair_text(p: dict, this: str, other: str) -> str:
    return (f"faces only {this} gets right {p['only_this_right']}, only {other} {p['only_other_right']}: "
            f"paired z {p['z']:+.2f}")


def reference_line(r: dict, best: dict) -> str:
    """A reference's printed row: its scores, the best candidate against it, and it against the first reference."""
    first = r.get("this_vs_first_reference")
    return (f"{r['candidate']:26s} {100 * r['val_accuracy']:7.2f}% {100 * r['val_macro_f1']:7.2f}%   best "
            f"{100 * (best['val_accuracy'] - r['val_accuracy']):+.2f} points against it "
            f"({pair_text(r['best_vs_this'], 'the best', 'it')})"
            + (f"; against the first reference: {pair_text(first, 'this', 'that')}" if first else ""))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs", nargs=-1, required=True)
@click.option("--data", help="The runs' data file, if it moved since training.")
@click.option("--max-passes", type=click.IntRange(min=1), help="Only candidates with at most this many model passes "
              "per face can be the best (e.g. the shipped default's passes).")
@click.option("--reference", "references", multiple=True, metavar="MODEL",
              help="A converted model (e.g. device/models/default) scored on the same faces, never chosen.")
@click.option("--json", "json_path", help="Write the rows here, with the command that made them.")
@click.pass_context
def cli(ctx, runs, data, max_passes, references, json_path):
    """Score every candidate (each run, its mirror average, every ensemble) on the first run's validation faces."""
    from device.paths import resolve_run
    from device.provenance import record
    rows, refs = select([str(resolve_run(r)) for r in runs], data, references)  # runs/NAME: under the runs root
    allowed = [r for r in rows if max_passes is None or r["passes_per_face"] <= max_passes]
    best = max(allowed, key=lambda r: r["val_accuracy"])
    click.echo(f"{'candidate':26s} {'val acc':>8s} {'macro-F1':>8s} {'passes':>6s}")
    for r in rows:
        click.echo(f"{r['candidate']:26s} {100 * r['val_accuracy']:7.2f}% {100 * r['val_macro_f1']:7.2f}% "
                   f"{r['passes_per_face']:6d}" + ("   <- best on validation" if r is best else ""))
    for i, r in enumerate(refs):
        r["best_vs_this"] = paired(best["correct"], r["correct"])
        r["this_vs_first_reference"] = paired(r["correct"], refs[0]["correct"]) if i else None
        click.echo(reference_line(r, best))
    click.echo(f"validation faces: {rows[0]['n']} (carved from Training; the test split is not used)")
    for r in rows + refs:
        r.pop("correct")  # per face: used above, not kept
    if json_path:
        from device.atomic import write_json
        from device.paths import portable_record  # committed in docs/selection: runs as runs/NAME
        write_json(json_path, portable_record({"rows": rows, "best": best["candidate"], "max_passes": max_passes,
                                               "references": refs, "provenance": record(PROG, ctx.obj, ctx.params)}))
