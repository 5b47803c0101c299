"""Operations on a finished network's weights: BatchNormalization input statistics and weight averages.

Used by ``convert/recover.py`` (a network rebuilt from a converted file gets statistics that make
its BatchNorms the identity in training mode too) and ``convert/soup.py`` (the average of runs fine-tuned
from one start, whose BatchNorms then need statistics of the averaged network's own activations).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers as kl


def batch_norms(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, kl.BatchNormalization)]


def input_stats(model: keras.Model, norms: list, faces: np.ndarray, batch: int = 256) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mean, variance) per channel of each of ``norms``' inputs over ``faces``, in inference mode, in one
    pass; accumulated batch by batch in float64 (one face's activations through a vgg_cnn are ~1 MB)."""
    probe = keras.Model(model.inputs, [layer.input for layer in norms])
    sums = [np.zeros((3, int(layer.input.shape[-1])), np.float64) for layer in norms]
    for start in range(0, len(faces), batch):
        outs = probe(faces[start:start + batch], training=False)
        for s, x in zip(sums, outs if isinstance(outs, (list, tuple)) else [outs]):
            x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
            s += [np.full(x.shape[1], len(x), np.float64), x.sum(0), (x * x).sum(0)]
    return [(s1 / n, np.maximum(s2 / n - (s1 / n) ** 2, 0.0)) for n, s1, s2 in sums]


def reestimate_batchnorm(model: keras.Model, faces: np.ndarray) -> None:
    """Set each BatchNormalization's moving mean and variance to its input's statistics over ``faces``,
    keeping its learnt scale and offset: what the moving averages converge to for these weights. One
    layer at a time from the input, since each layer's input depends on the statistics before it."""
    for norm in batch_norms(model):
        (mean, var), = input_stats(model, [norm], faces)
        gamma, beta, _, _ = norm.get_weights()
        norm.set_weights([gamma, beta, mean.astype(np.float32), var.astype(np.float32)])


def average_weights(models: list[keras.Model], shares: list[float]) -> list[np.ndarray]:
    """The weighted average of same-shaped networks' weights, array by array (BatchNorm statistics too:
    ``reestimate_batchnorm`` replaces them after)."""
    if abs(sum(shares) - 1.0) > 1e-6:
        raise ValueError(f"the shares must add up to 1, got {sum(shares)}")
    all_weights = [m.get_weights() for m in models]
    shapes = [[w.shape for w in ws] for ws in all_weights]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("the networks have different weight shapes: not the same network")
    return [sum(share * ws[i].astype(np.float64) for share, ws in zip(shares, all_weights)).astype(ws0.dtype)
            for i, ws0 in enumerate(all_weights[0])]
