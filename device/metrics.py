"""One evaluate function for every model ferlite scores: Keras, float32 and int8 TFLite.

It takes a ``predict`` callable (faces -> probabilities), so the accuracy drop
between models is measured on the same faces, the same way.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .contract import LABELS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    return np.bincount(num_classes * np.asarray(y_true, np.int64) + np.asarray(y_pred, np.int64),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray, labels: Sequence[str] = LABELS) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1 from a confusion matrix."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = cm.sum()
    return {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion": cm.astype(int).tolist(),
        "labels": list(labels),
    }


def evaluate(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, labels: np.ndarray,
             class_names: Sequence[str] = LABELS, batch_size: int = 256, progress=None) -> dict:
    """Score ``predict`` on uint8 ``faces`` (N, 48, 48) with true ``labels`` (N,).

    Returns the metrics dict and keeps the raw probabilities under ``"probs"`` (an
    array, dropped before writing JSON) so callers can compare two models face by face.
    ``progress`` is an optional callable taking the number of faces just done.
    """
    faces = np.asarray(faces)
    labels = np.asarray(labels)
    if len(faces) != len(labels) or len(faces) == 0:
        raise ValueError(f"need as many labels as faces, and at least one face (got {len(faces)} and {len(labels)})")
    chunks = []
    for i in range(0, len(faces), batch_size):
        chunks.append(np.asarray(predict(faces[i:i + batch_size]), np.float32))
        if progress is not None:
            progress(len(chunks[-1]))
    probs = np.concatenate(chunks)
    pred = probs.argmax(axis=1)
    result = scores_from_confusion(confusion_matrix(labels, pred, len(class_names)), class_names)
    result["probs"] = probs
    return result


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> dict:
    """How closely two models agree on the same faces: top-1 agreement and mean |delta p|."""
    return {"top1_agreement": float((probs_a.argmax(1) == probs_b.argmax(1)).mean()),
            "mean_abs_prob_delta": float(np.abs(probs_a - probs_b).mean())}
