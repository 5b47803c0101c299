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


def test_jpeg_round_trip_matches_opencv():
    """The in-model JPEG stage stores a face as libjpeg does: within a fraction of a level of OpenCV's own
    encode and decode at the field benchmark's qualities, while JPEG itself moves pixels by several levels."""
    cv2 = pytest.importorskip("cv2")
    from train.degrade import jpeg_round_trip
    x = faces(16, seed=3)[..., 0].astype(np.uint8)
    for q in (10, 25, 50):
        ref = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_GRAYSCALE)
                        for f in x]).astype(np.float32)
        ours = np.asarray(jpeg_round_trip(x[..., None].astype(np.float32), np.full(len(x), q, np.float32)))[..., 0]
        assert np.abs(ref - x).mean() > 2.0
        assert np.abs(ours - ref).mean() < 0.5


def test_field_jpeg_kind_stores_some_faces_as_jpeg():
    """The field_jpeg kind's camera carries the JPEG stage and saves it; plain field keeps none (older runs'
    recipe), and a degraded face through the JPEG stage shows 8x8 block edges."""
    from train.augment import build_augment
    from train.degrade import RandomDegrade
    by_kind = {k: build_augment(k, seed=1).get_layer("random_degrade") for k in ("field", "field_jpeg")}
    assert by_kind["field"].jpeg == 0.0 and by_kind["field_jpeg"].jpeg > 0
    assert RandomDegrade.from_config(by_kind["field_jpeg"].get_config()).jpeg == by_kind["field_jpeg"].jpeg
    x = faces(64, seed=4)
    y = np.asarray(RandomDegrade(1.0, seed=5, jpeg=1.0)(x, training=True))
    assert np.array_equal(y, np.round(y)) and y.min() >= 0 and y.max() <= 255
    # across a block boundary (columns 7|8) neighbours differ more than inside a block (columns 3|4)
    edge = np.abs(y[:, :, 8] - y[:, :, 7]).mean() - np.abs(x[:, :, 8] - x[:, :, 7]).mean()
    inner = np.abs(y[:, :, 4] - y[:, :, 3]).mean() - np.abs(x[:, :, 4] - x[:, :, 3]).mean()
    assert edge > inner
