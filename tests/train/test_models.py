"""Model shapes, the gray conv1 trick, freezing and the feature cache (weights=None, tiny batches)."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from train.cache import FeatureBatches, compute_features  # noqa: E402
from train.layers import ScaledL2Normalize  # noqa: E402
from train.models import MODELS, assemble, build_model, build_resnet50_parts, gray_resnet50, unfreeze_top  # noqa: E402

RNG = np.random.default_rng(0)


def faces(n):
    return RNG.integers(0, 256, (n, 48, 48, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def r50_parts():
    keras.utils.set_random_seed(0)
    return build_resnet50_parts(weights=None, augment=False)


@pytest.mark.parametrize("name", MODELS)
def test_output_is_softmax(name):
    model = build_model(name, weights=None)
    assert model.input.shape[1:] == (48, 48, 1) and model.inputs[0].name == "face"
    probs = np.asarray(model(faces(2), training=False))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    if name == "vanilla_cnn":
        assert 500_000 <= model.count_params() <= 1_500_000
    if name == "vgg_cnn_wide":  # 2.25 times vgg_cnn's convs: an int8 file well under the 4 MB budget
        assert 2.0 <= model.count_params() / build_model("vgg_cnn").count_params() <= 2.5
        assert model.count_params() <= 3_500_000


@pytest.mark.slow
def test_gray_conv1_equals_repeated_gray():
    keras.utils.set_random_seed(1)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(48, 48, 3))
    # Random BatchNorm statistics, so the check is not helped by identity BN.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g, b, RNG.normal(0, 0.1, m.shape), RNG.uniform(0.5, 2, v.shape)])
    x = faces(2) - 114.0
    want = np.asarray(base(np.repeat(x, 3, axis=-1), training=False))
    gray = gray_resnet50(base, keep_stem_pool=True)
    np.testing.assert_allclose(np.asarray(gray(x, training=False)), want, atol=1e-4 * max(1.0, np.abs(want).max()))
    assert gray_resnet50(base).output.shape[1:3] == (None, None)
    assert np.asarray(gray_resnet50(base)(x)).shape[1:3] == (3, 3)  # stem pool removed: 3x3 at conv5
    assert want.shape[1:3] == (2, 2)


def test_l2_normalize_layer():
    layer = ScaledL2Normalize()
    v = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(np.asarray(layer(v)), [[0.6, 0.8], [0.0, 0.0]], atol=1e-6)
    clone = ScaledL2Normalize.from_config(layer.get_config())
    assert clone.epsilon == layer.epsilon


def _snapshot(model):
    return [np.array(w) for w in model.weights]


@pytest.mark.slow
def test_backbone_frozen_and_bn_stats_fixed(r50_parts):
    augment, backbone, head = r50_parts
    model = assemble(augment, backbone, head)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    before_bb, before_head = _snapshot(backbone), _snapshot(head)
    model.train_on_batch(faces(4), np.array([0, 1, 2, 3]))
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before_bb, backbone.weights))  # incl. moving stats
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(before_head, head.weights))
    assert len(model.trainable_weights) == len(head.trainable_weights)


@pytest.mark.slow
def test_fine_tune_unfreezes_conv5_only():
    keras.utils.set_random_seed(2)
    model = build_model("resnet50", weights=None, augment=False)
    assert unfreeze_top(model) > 0
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    bb = model.get_layer("backbone")
    before = {w.path: np.array(w) for w in bb.weights}
    model.train_on_batch(faces(2), np.array([0, 1]))
    changed = {w.path for w in bb.weights if not np.array_equal(before[w.path], np.array(w))}
    assert changed and all("conv5_" in p and "_bn" not in p for p in changed)


@pytest.mark.slow
def test_feature_cache_matches_full_model(r50_parts, tmp_path):
    augment, backbone, head = r50_parts
    x = faces(5).astype(np.uint8)[..., 0]
    feats = compute_features(backbone, x, tmp_path / "f.npy", batch_size=2)
    assert feats.dtype == np.float16 and feats.shape == (5, 3, 3, 2048)
    batches = FeatureBatches([feats], np.arange(5) % 7, batch_size=5, shuffle=False)
    fx, fy = batches[0]
    cached = np.asarray(head(fx, training=False))
    full = np.asarray(assemble(augment, backbone, head)(x[..., None].astype(np.float32), training=False))
    np.testing.assert_allclose(cached, full, atol=2e-3)
    assert compute_features(backbone, x, tmp_path / "f.npy") is not None  # reused, not recomputed


def test_crop_augmentation_shifts_whole_pixels():
    """"crop": each training face is its padded self, shifted by at most CROP_PAD whole pixels (maybe
    mirrored): no interpolated values; at inference the face passes unchanged."""
    from train.augment import CROP_PAD, build_augment
    aug = build_augment("crop", seed=1)
    x = faces(16)
    assert np.array_equal(np.asarray(aug(x, training=False)), x)
    y = np.asarray(aug(x, training=True))
    pad = np.pad(x, ((0, 0), (CROP_PAD, CROP_PAD), (CROP_PAD, CROP_PAD), (0, 0)))
    for face, out in zip(pad, y):
        windows = [w[dy:dy + 48, dx:dx + 48] for w in (face, face[:, ::-1])
                   for dy in range(2 * CROP_PAD + 1) for dx in range(2 * CROP_PAD + 1)]
        assert any(np.array_equal(out, w) for w in windows)
    assert not np.array_equal(y, x)


def test_crop_recipe_compiles_under_xla():
    """Every layer of the best recipe's model (crop + erasing) supports XLA: Keras otherwise turns
    jit_compile off for the whole model, and on JAX it then trains op by op (702 ms per batch on an H200
    with keras.layers.RandomTranslation inside, against 5 ms compiled; docs/train_speed/jax-h200.json)."""
    from train.models import build_model
    model = build_model("vgg_cnn", augment="crop", erasing=0.5, seed=1)
    assert [layer.name for layer in model._flatten_layers() if not layer.supports_jit] == []


def test_unknown_augmentation_is_refused():
    from train.augment import build_augment
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_augment("mixup")


def test_random_erasing_fills_one_rectangle():
    from train.layers import RandomErasing
    layer = RandomErasing(1.0, seed=3)
    x = faces(8)
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    for face, out in zip(x, y):
        rows, cols = np.nonzero((out != face)[..., 0])
        assert rows.size > 0
        box = out[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert np.all(box == box.flat[0])  # one gray, a filled rectangle
        assert 0.02 * 48 * 48 * 0.5 <= box.size <= 0.25 * 48 * 48 + 96
