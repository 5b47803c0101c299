"""Check that the model code is backend-neutral: build every model and run one training step
on real FER2013 sample faces under the Keras backend this process was started with.

    KERAS_BACKEND=jax   python scripts/release/check_backends.py --data ../shared/data/fer2013/sample.csv
    KERAS_BACKEND=torch python scripts/release/check_backends.py --data ...

Needs keras, numpy, opencv-python-headless and the backend itself (no TensorFlow for jax/torch).
ResNet50 runs with weights=None here: this checks the code path, not accuracy.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True))
@click.option("--batch", default=16, show_default=True)
def main(data, batch):
    import keras

    from train.data import load_fer2013
    from train.fit import sample_weights
    from train.models import MODELS, build_model

    ds = load_fer2013(data)
    x = ds.faces[:batch, ..., None].astype(np.float32)
    y = ds.labels[:batch]
    w = sample_weights(y, "paper")
    for name in MODELS:
        t = time.perf_counter()
        model = build_model(name, weights=None, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
        loss = float(model.train_on_batch(x, y, sample_weight=w))
        probs = keras.ops.convert_to_numpy(model(x, training=False))
        assert probs.shape == (batch, 7) and np.allclose(probs.sum(1), 1, atol=1e-4), probs.shape
        assert np.isfinite(loss), loss
        print(f"{keras.backend.backend()}: {name} ok ({model.count_params():,} params, loss {loss:.3f}, "
              f"{time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
