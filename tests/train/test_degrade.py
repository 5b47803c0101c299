"""The field augmentation's camera (train/degrade.py): identity at inference, whole 0..255 levels in
training, every face changed at rate 1 and none at rate 0, and a model holding it saves and loads."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")


def faces(n, seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 48, dtype=np.float32)
    x = base[None, :, None] * np.ones((n, 48, 1), np.float32) + rng.normal(0, 20, (n, 48, 48))
    return np.clip(np.round(x), 0, 255)[..., None].astype(np.float32)


def test_degrade_is_identity_at_inference():
    from train.degrade import RandomDegrade
    x = faces(8)
    assert np.array_equal(np.asarray(RandomDegrade(1.0, seed=1)(x, training=False)), x)


def test_degrade_keeps_whole_pixel_levels_and_changes_every_face_at_rate_one():
    from train.degrade import RandomDegrade
    x = faces(64)
    y = np.asarray(RandomDegrade(1.0, seed=2)(x, training=True))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert np.array_equal(y, np.round(y))
    changed = np.abs(y - x).reshape(len(x), -1).mean(1) > 0.5
    assert changed.all()
    # the lighting reaches dark faces and washed-out ones, not only small changes
    means = y.reshape(len(y), -1).mean(1)
    assert means.min() < 0.5 * x.mean() and means.max() > x.mean()


def test_degrade_at_rate_zero_passes_faces_through():
    from train.degrade import RandomDegrade
    x = faces(8)
    assert np.array_equal(np.asarray(RandomDegrade(0.0, seed=1)(x, training=True)), x)


def test_field_augmentation_model_round_trips(tmp_path):
    """A vgg_cnn with the field augmentation saves and loads (its layers are registered), and at inference
    the loaded model gives the same probabilities: the exported file takes the plain face."""
    from train.models import build_model
    model = build_model("vgg_cnn", augment="field", erasing=0.25, seed=1)
    x = faces(4)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)),
                               atol=1e-5)
    assert "random_degrade" in [layer.name for layer in model.get_layer("augment").layers]
