"""Rebuild a Keras run folder from a converted model whose run folder is gone (e.g. the shipped default).

    python -m convert recover device/models/default --out runs/default-keras

Why: a converted file can teach (``train --teacher``), but an ensemble member (``convert --member``)
or a starting point (``train --init-from``) must be a run folder with ``model.keras``. The file holds
all the weights: per-channel int8 kernels with their scales and int32 biases into which the converter
folded each BatchNormalization. They are read by the LiteRT interpreter, dequantized, and put into
the network ``train.models`` builds for the metadata's model name: each BatchNormalization becomes
the identity plus the folded bias (its statistics set from the activations of 4,096 training faces, so
the run can be fine-tuned with ``train --init-from``), and the first kernel is scaled back by 255, since
the converter folded ``Rescaling(1/255)`` into it. A file converted with ``--flip-tta`` holds the
network twice over the same kernels; the face's branch is read, and ``convert --flip-tta`` puts the
mirror back.

Before anything is written, the rebuilt model (with the mirror average when the file has it) is scored
against the file on the run's validation faces: below MIN_AGREEMENT of the same top labels nothing is
written. The run folder's config.json records the file (path, sha256) it came from and the data and
split of its metadata, so ``convert`` and ``train --init-from`` check the held-out faces as usual.
Plain convolutional networks only (vanilla_cnn, vgg_cnn, vgg_cnn_wide): one kernel per Conv2D or Dense.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

PROG = "python -m convert recover"
# int8 activations round differently from float ones: the shipped default's top label changes on 0.5% of
# the faces, a barely trained net's (flat probabilities) on a few %; a wrong mapping reads near chance
MIN_AGREEMENT = 0.90
# training faces whose activations set each BatchNormalization's statistics (here and in soup.py):
# enough for each channel's mean and variance, a few seconds per layer
BN_FACES = 4096
WEIGHTED_OPS = ("CONV_2D", "FULLY_CONNECTED")


def dequantize(detail: dict, value: np.ndarray) -> np.ndarray:
    """A constant tensor as float32: per-channel (or per-tensor) scale and zero point, or as stored if float."""
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", ()), np.float32)
    if not scales.size:
        return value.astype(np.float32)
    axis, zeros = q.get("quantized_dimension", 0), np.asarray(q["zero_points"], np.float32)
    shape = [1] * value.ndim
    shape[axis] = -1 if scales.size > 1 else 1
    return (value.astype(np.float32) - zeros.reshape(shape)) * scales.reshape(shape)


def read_layers(tflite: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op, float kernel in Keras layout, float bias) per distinct kernel, in the order the graph uses them."""
    from device.interpreter import interpreter_class
    interpreter = interpreter_class()(model_path=str(tflite))
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    layers, seen = [], set()
    for op in interpreter._get_ops_details():  # the Python API has no public op list
        if op["op_name"] not in WEIGHTED_OPS or int(op["inputs"][1]) in seen:
            continue  # the mirror branch of a --flip-tta file reuses the face branch's kernels
        w_i, b_i = int(op["inputs"][1]), int(op["inputs"][2]) if len(op["inputs"]) > 2 else -1
        seen.add(w_i)
        w = dequantize(details[w_i], interpreter.get_tensor(w_i))
        w = w.transpose(1, 2, 3, 0) if op["op_name"] == "CONV_2D" else w.T  # (out, h, w, in) -> (h, w, in, out)
        b = dequantize(details[b_i], interpreter.get_tensor(b_i)) if b_i >= 0 else np.zeros(w.shape[-1], np.float32)
        layers.append((op["op_name"], w, b))
    return layers


def fill(model, weights: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Put the file's kernels into ``model``: BatchNorm after a kernel -> identity + folded bias."""
    from keras import layers as kl
    order = [l for l in model.layers if isinstance(l, (kl.Conv2D, kl.Dense))]
    want = [("CONV_2D" if isinstance(l, kl.Conv2D) else "FULLY_CONNECTED", tuple(l.kernel.shape)) for l in order]
    got = [(op, w.shape) for op, w, _ in weights]
    if want != got:
        raise ValueError(f"the file's layers do not match a {model.name}: {len(got)} kernels {got[:3]}... "
                         f"against {len(want)} {want[:3]}...")
    rescale = [l for l in model.layers[:model.layers.index(order[0])] if isinstance(l, kl.Rescaling)]
    scale = float(np.prod([l.scale for l in rescale])) if rescale else 1.0
    after = {id(a): b for a, b in zip(model.layers, model.layers[1:])}
    for i, (layer, (_, w, b)) in enumerate(zip(order, weights)):
        w = w / scale if i == 0 else w  # the converter folded the Rescaling in front of the first kernel into it
        nxt = after.get(id(layer))
        if isinstance(nxt, kl.BatchNormalization):
            layer.set_weights([w])
            eps = float(nxt.epsilon)  # gamma * (x - 0) / sqrt(1 + eps) + beta == x + bias
            nxt.set_weights([np.full_like(b, np.sqrt(1.0 + eps)), b, np.zeros_like(b), np.ones_like(b)])
        else:
            layer.set_weights([w, b])


def calibrate_batchnorm(model, faces: np.ndarray) -> None:
    """Give each BatchNormalization its input's mean and variance over ``faces`` (real training faces) as
    its moving statistics, and as its scale and offset (offset plus the folded bias): still the identity
    plus the bias at inference, and in training mode too, where a batch's statistics stand in for these.
    Why: an identity BatchNormalization (moving mean 0, variance 1) would standardise every channel as
    soon as ``train --init-from`` fine-tunes the network, undoing the file's folded scales and offsets.
    One pass serves every layer, since none of this changes what any layer computes at inference."""
    from train.weights import batch_norms, input_stats
    norms = batch_norms(model)
    for norm, (mean, var) in zip(norms, input_stats(model, norms, faces) if norms else []):
        _, bias, _, _ = norm.get_weights()
        norm.set_weights([np.sqrt(var + norm.epsilon), mean + bias, mean, var])


def batchnorm_faces(rd) -> np.ndarray:
    """BN_FACES shuffled training faces of a run's data (``calibration.load_run_data``), preprocessed."""
    from convert import calibration as cal
    return cal.preprocess(rd.faces[np.random.default_rng(0).permutation(rd.train)[:BN_FACES]])


def recover(model_arg: str, out: Path, data: str | None, provenance: dict | None = None) -> dict:
    from convert import calibration as cal
    from convert import quiet_tensorflow
    quiet_tensorflow()  # TF's C++ import banner would bury the one line this prints
    from convert.report import keras_predict
    from device.errors import InputError, UsageError
    from device.interpreter import TFLiteClassifier
    from device.metadata import read_metadata
    from device.metrics import evaluate
    from device.provenance import file_sha256
    from train.config import TrainConfig
    from train.distill import converted_model
    from train.models import averaged, build_model

    if out.exists():
        raise UsageError(f"--out {out} already exists: give a new folder")
    tflite = converted_model(Path(model_arg), "model")
    if tflite is None:
        raise InputError(f"{model_arg}: no .tflite model there")
    meta = read_metadata(tflite)
    held = meta.get("data") or {}
    cfg = {**TrainConfig().to_dict(), "model": meta.get("model"), "out": str(out), "data": held.get("path"),
           **{k: held[k] for k in ("split", "seed", "val_fraction", "limit", "labels", "ferplus", "label_scheme")
              if k in held},  # a FER+ model's split and labels need its votes file and scheme
           "recovered_from": {"model": str(tflite), "sha256": file_sha256(tflite)}}
    try:
        model = build_model(cfg["model"], num_classes=len(meta["labels"]))
        fill(model, read_layers(tflite))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{tflite}: cannot rebuild it as Keras ({e})") from None
    rd = cal.load_run_data(tflite.parent, cfg, meta, data)
    calibrate_batchnorm(model, batchnorm_faces(rd))
    faces, truth = cal.preprocess(rd.faces[rd.val]), rd.labels[rd.val]
    flip = meta.get("test_time_augmentation") == "flip"
    rebuilt = evaluate(keras_predict(averaged([model], flip)), faces, truth, class_names=meta["labels"])
    original = evaluate(TFLiteClassifier(tflite).predict_batched, faces, truth, class_names=meta["labels"])
    agreement = float((rebuilt["probs"].argmax(1) == original["probs"].argmax(1)).mean())
    check = {"val_faces": int(len(truth)), "agreement": agreement, "val_accuracy_keras": rebuilt["accuracy"],
             "val_accuracy_file": original["accuracy"], "mirror_average": flip}
    if agreement < MIN_AGREEMENT:
        raise InputError(f"{tflite}: the rebuilt model agrees with the file on only {agreement:.1%} of the "
                         f"validation faces (needs {MIN_AGREEMENT:.0%}): nothing written")
    write_run(out, model, {**meta, "recovered_from": cfg["recovered_from"]}, {**cfg, "recovery_check": check},
              provenance or {}, metrics={"recovered_from": cfg["recovered_from"], "recovery_check": check})
    return check


def write_run(out: Path, model, meta: dict, cfg: dict, provenance: dict, metrics: dict | None = None) -> None:
    """model.keras, metadata.json (without the mirror: the network is one pass) and config.json (with the
    command that made it), written into a scratch folder renamed to ``out`` at the end: a failure leaves
    no half run folder. soup.py writes its run folders with it too. ``metrics``: a metrics.json, the mark of a
    finished run that ``convert ship`` and ``convert results --archive`` look for (a recovered run has nothing
    left to train: it holds the recovery check, not training figures)."""
    import shutil

    from device.atomic import write_json
    from device.metadata import write_metadata
    from device.paths import portable_record
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save(tmp / "model.keras")
        write_metadata(tmp, {k: v for k, v in meta.items() if k != "test_time_augmentation"})
        write_json(tmp / "config.json", portable_record({**cfg, "provenance": provenance}))  # runs as runs/NAME
        if metrics is not None:
            write_json(tmp / "metrics.json", portable_record(metrics))
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The new run folder (must not exist yet).")
@click.option("--data", help="The model's data file, if it moved since training.")
@click.pass_context
def cli(ctx, model, out, data):
    """Rebuild a Keras run folder from MODEL: a converted .tflite file (metadata.json beside it) or its folder
    (its float32 file if there, else its int8 one, as train --teacher reads a folder)."""
    from device.paths import resolve_run
    from device.provenance import record
    c = recover(str(resolve_run(model)), out, data, record(PROG, ctx.obj, ctx.params))
    click.echo(f"wrote {out}: the rebuilt model agrees with the file on {c['agreement']:.2%} of "
               f"{c['val_faces']} validation faces (accuracy {c['val_accuracy_keras']:.2%} Keras, "
               f"{c['val_accuracy_file']:.2%} the file{', both with the mirror average' if c['mirror_average'] else ''})")
