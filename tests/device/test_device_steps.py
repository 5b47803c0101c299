"""Each loop step on real still images: detection, tracking, cropping, classifying, smoothing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.contract import crop_face
from device.detect import HaarDetector, IoUTracker, iou_matrix
from device.interpreter import TFLiteClassifier
from device.loop import crop_batch, detect_step, face_records
from device.smoothing import ema

# Face counts from the data README (OpenCV Haar frontal face, full resolution).
EXPECTED_FACES = {"skimage_astronaut.png": 1, "facerec_obama.jpg": 1, "facerec_biden.jpg": 1,
                  "facerec_two_people.jpg": 2, "fer_justin.jpg": 1}


def gray(faces_dir, name):
    img = cv2.imread(str(faces_dir / name))
    assert img is not None
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


@pytest.fixture(scope="module")
def detector():
    return HaarDetector(detect_width=640)


@pytest.mark.parametrize("name,n", sorted(EXPECTED_FACES.items()))
def test_haar_finds_the_faces_in_real_photos(detector, faces_dir, name, n):
    g = gray(faces_dir, name)
    boxes = detector.detect(g)
    assert boxes.shape == (n, 4) and boxes.dtype == np.int32
    # boxes are in full-frame pixels, inside the frame
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= g.shape[1] + 1).all() and (boxes[:, 1] + boxes[:, 3] <= g.shape[0] + 1).all()


def test_downscaled_detection_matches_full_size(faces_dir):
    g = gray(faces_dir, "skimage_astronaut.png")
    full = HaarDetector(detect_width=0).detect(g)
    small = HaarDetector(detect_width=256).detect(g)
    assert len(full) == len(small) == 1
    assert iou_matrix(full, small)[0, 0] > 0.7


def test_crop_batch_uses_the_contract_crop(detector, faces_dir):
    g = gray(faces_dir, "facerec_two_people.jpg")
    boxes = detector.detect(g)
    buf = np.zeros((16, 48, 48), np.uint8)
    crops = crop_batch(g, boxes, buf)
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8
    assert np.shares_memory(crops, buf)
    for crop, box in zip(crops, boxes):
        np.testing.assert_array_equal(crop, crop_face(g, box))
    assert crop_batch(g, []).shape == (0, 48, 48)


def test_one_batched_predict_equals_per_face(detector, faces_dir, model_int8):
    g = gray(faces_dir, "facerec_two_people.jpg")
    crops = crop_batch(g, detector.detect(g))
    clf = TFLiteClassifier(model_int8, threads=1)
    batched = clf.predict(crops)
    single = np.concatenate([clf.predict(crops[i:i + 1]) for i in range(len(crops))])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    faces = face_records(IoUTracker().update(detector.detect(g)), batched, clf.labels)
    assert [f["label"] for f in faces] == [clf.labels[k] for k in batched.argmax(1)]


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [100, 100, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [50, 50, 5, 5]])
    m = iou_matrix(a, b)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m[0], [1.0, 50 / 150, 0.0], rtol=1e-6)
    assert (m[1] == 0).all()
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_tracker_keeps_ids_and_survives_one_missed_detection():
    tr = IoUTracker(iou_threshold=0.3, max_missed=1)
    t1 = tr.update(np.array([[10, 10, 50, 50], [200, 10, 50, 50]]))
    assert [t.id for t in t1] == [1, 2]
    t2 = tr.update(np.array([[205, 12, 50, 50], [14, 10, 50, 50]]))  # both moved a little, other order
    assert sorted((t.id, int(t.box[0])) for t in t2) == [(1, 14), (2, 205)]
    assert [t.id for t in tr.update(np.array([[14, 10, 50, 50]]))] == [1]  # face 2 missed once: hidden
    assert [t.id for t in tr.update(np.array([[14, 10, 50, 50], [205, 12, 50, 50]]))] == [1, 2]  # back, same id
    tr.update(np.array([[14, 10, 50, 50]]))
    tr.update(np.array([[14, 10, 50, 50]]))  # face 2 missed twice: dropped
    assert [t.id for t in tr.update(np.array([[14, 10, 50, 50], [205, 12, 50, 50]]))] == [1, 3]


def test_detect_step_runs_the_detector_every_n_frames():
    class Counting:
        calls = 0

        def detect(self, gray):
            self.calls += 1
            return np.array([[10, 10, 40, 40]], np.int32)

    det, tr, g = Counting(), IoUTracker(), np.zeros((120, 160), np.uint8)
    flags = [detect_step(det, tr, g, i, 3)[1] for i in range(7)]
    assert flags == [True, False, False, True, False, False, True] and det.calls == 3
    assert [t.id for t in tr.visible] == [1]
    # stills: every image detected afresh, no track carried over
    detect_step(det, tr, g, 1, 3, stills=True)
    assert det.calls == 4 and [t.id for t in tr.visible] == [2]


def test_ema_smoothing_per_track():
    np.testing.assert_allclose(ema(None, [0.2, 0.8], 0.5), [0.2, 0.8])
    np.testing.assert_allclose(ema(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.25), [0.75, 0.25])
    prev = np.array([[1.0, 0.0], [np.nan, np.nan]])
    np.testing.assert_allclose(ema(prev, np.array([[0.0, 1.0], [0.3, 0.7]]), 0.5), [[0.5, 0.5], [0.3, 0.7]])
    with pytest.raises(ValueError):
        ema(None, [1.0], 0.0)
    tr = IoUTracker(alpha=0.5)
    tracks = tr.update(np.array([[0, 0, 10, 10]]))
    tr.smooth(tracks, np.array([[1.0, 0.0]], np.float32))
    out = tr.smooth(tracks, np.array([[0.0, 1.0]], np.float32))
    np.testing.assert_allclose(out, [[0.5, 0.5]])
