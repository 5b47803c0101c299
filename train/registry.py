"""The one list of models, Keras-free so ``--help``, validation, results and reproduce can read it.

``train/models.py`` maps each name to its builder (and checks the two lists agree at import).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dropout: float            # default dropout (--dropout overrides)
    summary: str
    paper: bool = True        # one of the paper's three models (Table 2)
    backbone: bool = False    # a frozen ImageNet backbone: --weights applies
    weights_of: str | None = None  # holds this model's weights, layer for layer: --init-from may start from it


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("vanilla_cnn", 0.4, "the paper's plain CNN: conv-BN-ReLU blocks, max pooling, Flatten, Dense 256"),
    ModelSpec("residual_cnn", 0.4, "the paper's CNN with identity-shortcut residual blocks at each scale"),
    ModelSpec("resnet50", 0.3, "the paper's frozen ImageNet ResNet50, one-channel conv1, new head",
              backbone=True),
    ModelSpec("vgg_cnn", 0.4, "ours: two 3x3 conv-BN-ReLU per block (32-64-128-256), GAP, Dense 256",
              paper=False),
    ModelSpec("vgg_cnn_wide", 0.4, "ours: vgg_cnn 1.5 times as wide (48-96-192-384), GAP, Dense 384",
              paper=False),
    ModelSpec("vgg_cnn_norm", 0.4, "ours: vgg_cnn, each face first brought to one brightness and contrast "
              "(per-face standardisation, a layer in the model)", paper=False, weights_of="vgg_cnn"),
    ModelSpec("mobile_cnn", 0.2, "ours, fast tier: MobileNetV2 inverted residuals for 48x48 (16-24-40-80-128, "
              "1x1 to 256), GAP; ~5.7 M MACs a pass", paper=False),
    ModelSpec("mobile_cnn_small", 0.2, "ours: mobile_cnn at half width (8-16-24-40-64, 1x1 to 256); ~2 M MACs a pass",
              paper=False),
    ModelSpec("mobile_cnn_wide", 0.2, "ours: mobile_cnn 1.4 times as wide; ~11 M MACs a pass (one pass, no mirror)",
              paper=False),
)}
MODEL_NAMES = tuple(MODELS)
PAPER_MODELS = tuple(n for n, s in MODELS.items() if s.paper)


def normalize_weights(weights) -> str | None:
    """--weights as given -> "imagenet", a file path, or None (random init). The one place "none" is read."""
    if weights is None or str(weights).strip().lower() in ("", "none"):
        return None
    return "imagenet" if str(weights).lower() == "imagenet" else str(weights)
