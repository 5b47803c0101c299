"""The detection set's generator (device/detection_set.py) and its by-eye labels file
(scripts/docs/detection_labels.json)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from device import detection_set as mds

REAL_LABELS = Path(__file__).resolve().parents[2] / "scripts" / "docs" / "detection_labels.json"


@pytest.fixture(scope="module")
def background(faces_dir) -> np.ndarray:
    """A real faceless photo region: the curtains and flag beside the Obama portrait."""
    img = cv2.imread(str(faces_dir / "facerec_obama.jpg"), cv2.IMREAD_GRAYSCALE)
    return img[:300, :300].copy()


def test_composited_faces_have_true_boxes_inside_the_frame(background, sample_faces):
    faces, labels = sample_faces
    rng = np.random.default_rng(1)
    pool = np.arange(len(faces))
    for _ in range(10):
        frame, recs = mds.composite_frame(rng, background, faces, labels, pool, 3, "normal")
        assert frame.shape == mds.FRAME_SIZE[::-1] and frame.dtype == np.uint8
        assert 1 <= len(recs) <= 3
        boxes = np.array([r["box"] for r in recs])
        W, H = mds.FRAME_SIZE
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= W).all() and (boxes[:, 1] + boxes[:, 3] <= H).all()
        assert ((boxes[:, 2] >= mds.FACE_SIDE[0]) & (boxes[:, 2] <= mds.FACE_SIDE[1])).all()
        for r in recs:
            assert r["label"] == int(labels[r["fer_index"]]) and abs(r["angle"]) <= mds.MAX_ANGLE
        from device.detect import iou_matrix
        iou = iou_matrix(boxes, boxes)
        assert np.allclose(iou - np.eye(len(boxes)), 0)   # faces never overlap


def test_a_pasted_face_is_the_fer_face_in_its_box(background, sample_faces):
    """No rotation, no jitter, normal light: the box holds the FER face itself (its centre exactly)."""
    faces, _ = sample_faces
    patch, alpha = mds.face_patch(faces[0], 96, 0.0, 1.0, 0.0)
    assert patch.shape == alpha.shape == (96, 96)
    assert alpha[48, 48] == 1.0 and alpha[0, 0] == 0.0   # solid centre, faded corners
    big = cv2.resize(faces[0], (96, 96), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    np.testing.assert_allclose(patch[24:72, 24:72], np.clip(big, 0, 255)[24:72, 24:72], atol=1e-3)


def test_lighting_conditions(background):
    frame = cv2.resize(background, mds.FRAME_SIZE)
    rng = np.random.default_rng(0)
    dark = mds.apply_condition(frame, "dark_ir", rng)
    assert dark.mean() < 45 and dark.std() < 0.35 * frame.std()   # dark and flat, like an IR camera at night
    bright = mds.apply_condition(frame, "bright", rng)
    assert bright.mean() > frame.mean() + 30
    with pytest.raises(ValueError):
        mds.apply_condition(frame, "sunset", rng)


def test_real_labels_cover_the_shared_files(faces_dir):
    labels = json.loads(REAL_LABELS.read_text())
    assert len(labels["images"]["facerec_two_people.jpg"]) == 2
    for name, boxes in labels["images"].items():
        img = cv2.imread(str(faces_dir / name))
        for x, y, w, h in boxes:
            assert 0 <= x and 0 <= y and x + w <= img.shape[1] and y + h <= img.shape[0]
    for name, clip in labels["clips"].items():
        cap = cv2.VideoCapture(str(faces_dir / name))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == clip["frames"]
        cap.release()
        assert sorted(int(i) for i in clip["boxes"]) == list(range(0, clip["frames"], clip["step"]))
        assert all(len(b) == 1 for b in clip["boxes"].values())
