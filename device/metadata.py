"""The metadata file written beside every ferlite model (``metadata.json``).

It tells the device everything the model file itself cannot: the label names in
output order and which version of the input contract the model was trained on.
Input shape, dtype and quantization are read from the model file itself.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from . import contract
from .atomic import write_json
from .errors import InputError

METADATA_NAME = "metadata.json"
FORMAT = "ferlite-metadata/1"


class MetadataError(InputError):
    """A metadata file is missing, unreadable or does not fit this runtime."""


def make_metadata(model_name: str, labels: Sequence[str] = contract.LABELS, **extra) -> dict:
    """Metadata for a model trained on this contract; ``labels``: its outputs' names in order (FER2013's
    seven unless the run says otherwise, e.g. FER+'s eight); ``extra`` holds data/split/provenance."""
    return {
        "format": FORMAT,
        "model": model_name,
        "labels": list(labels),
        "input_shape": list(contract.INPUT_SHAPE),
        "input_range": list(contract.INPUT_RANGE),
        "preprocessing_version": contract.PREPROCESSING_VERSION,
        **extra,
    }


def metadata_path(model_path: str | Path) -> Path:
    """Where the metadata of a model file (or a model folder) lives: ``metadata.json`` beside it."""
    p = Path(model_path)
    return (p if p.is_dir() else p.parent) / METADATA_NAME


def write_metadata(folder: str | Path, meta: dict) -> Path:
    return write_json(Path(folder) / METADATA_NAME, meta)


def read_metadata(model_path: str | Path) -> dict:
    """Read and check the metadata beside ``model_path``; one clear error if it does not fit."""
    path = metadata_path(model_path)
    if not path.is_file():
        raise MetadataError(f"no {METADATA_NAME} beside {model_path} (expected {path}); "
                            "copy it from the run or convert folder together with the model")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MetadataError(f"{path}: not a readable metadata file ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MetadataError(f"{path}: not a ferlite metadata file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(s, str) for s in labels):
        raise MetadataError(f"{path}: 'labels' must be a non-empty list of names")
    version = meta.get("preprocessing_version")
    if version != contract.PREPROCESSING_VERSION:
        raise MetadataError(f"{path}: model was made for preprocessing version {version}, "
                            f"this runtime implements version {contract.PREPROCESSING_VERSION}")
    return meta
