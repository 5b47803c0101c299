"""Temperature scaling: probabilities that mean what they say, baked into the exported file.

Label smoothing and distillation leave a network under-confident (the shipped default says 0.60 on
average and is right 71% of the time), so the device's ``--alert-threshold`` would mean something
different for every model. One temperature T is fitted on the run's own validation faces by minimising
the negative log-likelihood of what the file will output: ``mean over views of softmax(z / T)``, the
views being each member (``--member``) on the face and, with ``--flip-tta``, its mirror. T is then
folded into the kernel and bias of each model's final softmax Dense ("probs"): softmax((W x + b) / T) =
softmax((W / T) x + b / T). The graph keeps its ops, so the float32 and int8 files (int8 in and out)
carry the calibration with nothing extra on the device, and top-1 is unchanged by a single T.

A per-class vector of temperatures is fitted too, and used only when it pays on validation faces it was
not fitted on (2-fold cross-validation, by ``MIN_PER_CLASS_GAIN`` nats per face): unlike one T, it can
change the top label.

The logits are the "probs" Dense's own outputs, read with its softmax switched off for the call
(``view_logits``): what the folded file divides. (log p would do for one T, softmax being shift-invariant,
but not for a per-class vector: the per-face shift would be divided by a different T for each class.)
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from device import contract
from device.reliability import reliability

PROBS_LAYER = "probs"      # train/models.py: every ferlite network ends in this softmax Dense
LOG_FLOOR = 1e-30          # a float32 probability that underflowed to 0 still gets a (very low) logit
T_RANGE = (0.05, 20.0)     # far wider than any ferlite model needs (about 0.5..2)
MIN_PER_CLASS_GAIN = 0.005  # nats per validation face the per-class vector must win by (held out)
CV_FOLDS = 2
METADATA_KEYS = ("temperature", "temperature_fit")  # what convert adds to metadata.json


class TemperatureError(ValueError):
    """The model cannot take a temperature (no softmax Dense named "probs")."""


# ---- the fit, on arrays -------------------------------------------------------------------------

def log_probs(probs: np.ndarray) -> np.ndarray:
    """Logits up to a per-face constant (all softmax needs), from probabilities."""
    return np.log(np.maximum(np.asarray(probs, np.float64), LOG_FLOOR))


def averaged_probs(logits: np.ndarray, t) -> np.ndarray:
    """(V, N, K) logits of V views -> (N, K): the mean over views of softmax(z / t); ``t`` scalar or (K,)."""
    z = np.asarray(logits, np.float64) / np.asarray(t, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).mean(axis=0)


def nll(logits: np.ndarray, labels: np.ndarray, t) -> float:
    """Mean negative log-likelihood of the true labels under ``averaged_probs``."""
    p = averaged_probs(logits, t)[np.arange(len(labels)), np.asarray(labels, np.int64)]
    return float(-np.log(np.maximum(p, 1e-300)).mean())


def _golden(f, lo: float, hi: float, iters: int = 50) -> float:
    """The minimum of a unimodal ``f`` on [lo, hi] by golden-section search."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The scalar T minimising ``nll``: a coarse grid on log T (so a second dip cannot trap it), then refined."""
    lo, hi = map(math.log, T_RANGE)
    grid = np.linspace(lo, hi, 121)
    losses = [nll(logits, labels, math.exp(u)) for u in grid]
    i = int(np.argmin(losses))
    return math.exp(_golden(lambda u: nll(logits, labels, math.exp(u)), grid[max(i - 1, 0)],
                            grid[min(i + 1, len(grid) - 1)]))


def fit_per_class(logits: np.ndarray, labels: np.ndarray, sweeps: int = 4) -> np.ndarray:
    """A (K,) vector of temperatures by coordinate descent on log T, starting from the scalar fit."""
    k = np.asarray(logits).shape[-1]
    u = np.full(k, math.log(fit_temperature(logits, labels)))
    for _ in range(sweeps):
        for c in range(k):
            def f(x, c=c):
                v = u.copy()
                v[c] = x
                return nll(logits, labels, np.exp(v))
            u[c] = _golden(f, max(u[c] - 1.5, math.log(T_RANGE[0])), min(u[c] + 1.5, math.log(T_RANGE[1])), 30)
    return np.exp(u)


def cross_validated(logits: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Held-out NLL of the scalar and the per-class fit (``CV_FOLDS``-fold on the validation faces)."""
    labels = np.asarray(labels, np.int64)
    folds = np.array_split(np.random.default_rng(seed).permutation(len(labels)), CV_FOLDS)
    total = {"scalar": 0.0, "per_class": 0.0}
    for held in folds:
        fit = np.setdiff1d(np.arange(len(labels)), held)
        zf, zh = logits[:, fit], logits[:, held]
        total["scalar"] += nll(zh, labels[held], fit_temperature(zf, labels[fit])) * len(held)
        total["per_class"] += nll(zh, labels[held], fit_per_class(zf, labels[fit])) * len(held)
    return {k: v / len(labels) for k, v in total.items()}


def choose(logits: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float | np.ndarray, dict]:
    """The temperature to bake (scalar unless the per-class vector pays held out) and the record of the fit."""
    t = fit_temperature(logits, labels)
    cv = cross_validated(logits, labels, seed) if len(labels) >= 2 * CV_FOLDS else None
    per_class = cv is not None and cv["scalar"] - cv["per_class"] > MIN_PER_CLASS_GAIN
    chosen = fit_per_class(logits, labels) if per_class else t
    record = {"method": "per-class" if per_class else "scalar", "scalar_temperature": round(t, 5),
              "cv_nll": None if cv is None else {k: round(v, 5) for k, v in cv.items()},
              "nll_before": round(nll(logits, labels, 1.0), 5), "nll_after": round(nll(logits, labels, chosen), 5)}
    return chosen, record


def as_json(t) -> float | list[float]:
    return [round(float(x), 5) for x in t] if np.ndim(t) else round(float(t), 5)


# ---- the Keras side -----------------------------------------------------------------------------

def probs_layer(model):
    """The final softmax Dense ("probs") of a ferlite network, searched through nested models."""
    import keras
    for layer in model.layers:
        if layer.name == PROBS_LAYER and isinstance(layer, keras.layers.Dense):
            if getattr(layer.activation, "__name__", "") != "softmax":
                raise TemperatureError(f"{model.name}: layer {PROBS_LAYER!r} has no softmax activation")
            return layer
        if isinstance(layer, keras.Model):
            try:
                return probs_layer(layer)
            except TemperatureError:
                continue
    raise TemperatureError(f"{model.name}: no softmax Dense named {PROBS_LAYER!r} to fold a temperature into "
                           "(pass --no-calibrate)")


def fold(model, t) -> None:
    """Divide the "probs" Dense's kernel and bias by ``t`` (scalar or per class): softmax(z / t) in place."""
    layer = probs_layer(model)
    t = np.asarray(t, np.float32)
    layer.set_weights([w / t for w in layer.get_weights()])  # kernel (in, K) and bias (K,): t broadcasts over K


def view_logits(models, faces: np.ndarray, flip: bool, batch_size: int = 256) -> np.ndarray:
    """(V, N, K) logits of every model on the faces and, with ``flip``, on their mirror images: the views
    ``train.models.averaged`` averages, in the same order (its MirrorFaces flips the width axis).

    The "probs" Dense's pre-softmax outputs (its activation set to linear for these eager calls, then put
    back); log(probabilities) for a model without that layer (it cannot be calibrated, only scored)."""
    views = [faces, faces[:, :, ::-1]] if flip else [faces]
    out = []
    for m in models:
        with _logits_out(m) as logits:
            for v in views:
                chunks = [np.asarray(m(contract.as_batch(v[i:i + batch_size]), training=False))
                          for i in range(0, len(v), batch_size)]
                out.append(np.concatenate(chunks).astype(np.float64) if logits else log_probs(np.concatenate(chunks)))
    return np.stack(out)


@contextlib.contextmanager
def _logits_out(model):
    """While inside, ``model`` outputs its "probs" Dense's logits (yields True), or its probabilities (False)."""
    import keras
    try:
        layer = probs_layer(model)
    except TemperatureError:
        yield False
        return
    softmax = layer.activation
    layer.activation = keras.activations.linear
    try:
        yield True
    finally:
        layer.activation = softmax


# ---- what the pipeline calls --------------------------------------------------------------------

@dataclass
class Calibration:
    """What ``calibrate`` did: the temperature folded in (None: not calibrated) and the report's record."""
    temperature: float | np.ndarray | None
    record: dict
    val_probs: np.ndarray | None           # the calibrated Keras output on the validation faces


def calibrate(models, flip: bool, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
              enabled: bool = True, seed: int = 0) -> Calibration:
    """Fit T on ``val`` (faces, labels) for the average of ``models`` (and mirrors), fold it into each model.

    Also scores the uncalibrated Keras output on ``val`` and ``test``: the report's "before". The models are
    the plain ones, before ``train.models.averaged`` wraps them, so folding reaches every member."""
    if not len(val[0]):
        if enabled:
            raise TemperatureError("the run's split has no validation faces to fit a temperature on "
                                   "(pass --no-calibrate)")
        return Calibration(None, {"calibrated": False}, None)
    zv = view_logits(models, val[0], flip)
    record = {"calibrated": enabled, "fit_on": "val", "n": int(len(val[1]))}
    if not enabled:
        return Calibration(None, record, averaged_probs(zv, 1.0))
    for m in models:
        probs_layer(m)  # refuse before anything is changed
    t, fit = choose(zv, val[1], seed)
    before = {"val": reliability(averaged_probs(zv, 1.0), val[1]),
              "test": reliability(averaged_probs(view_logits(models, test[0], flip), 1.0), test[1])}
    for m in models:
        fold(m, t)
    record.update(temperature=as_json(t), **fit, keras_uncalibrated=before)
    return Calibration(t, record, averaged_probs(zv, t))


def metadata_fields(cal: Calibration) -> dict:
    """metadata.json's record of the temperature baked into the files beside it (empty: none)."""
    if cal.temperature is None:
        return {}
    r = cal.record
    return {"temperature": r["temperature"],
            "temperature_fit": {"method": r["method"], "split": r["fit_on"], "n": r["n"],
                                "note": "baked into the files: softmax(logits / temperature)"}}
