"""contract.resize: the crop's and the detectors' resize, the same pixels on x86 and aarch64.

scripts/release/check_aarch64.sh runs this file under an emulated aarch64 Python too: the pinned MD5 below
was the same there (and with OpenCV 4.11 and 4.14), where cv2.resize's INTER_AREA at fractional
scales and INTER_LINEAR are not.
"""
from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from device.contract import crop_face, expand_box, face_to_input, resize, to_gray

# resize() of fer_justin.jpg's gray pixels to the sizes in test_same_pixels_everywhere
PINNED_MD5 = "8f0a0de3ec35d1c29fe91c509e0945f5"


@pytest.fixture(scope="module")
def photo(faces_dir) -> np.ndarray:
    """A real photo's gray pixels (JPEG decoding gives the same pixels on x86 and aarch64; video decoding does not)."""
    return to_gray(cv2.imread(str(faces_dir / "fer_justin.jpg")))


def test_same_pixels_everywhere(photo):
    h = hashlib.md5()
    for size in [(48, 48), (128, 129), (320, 323), (192, 194), (100, 37), (381, 20)]:
        h.update(resize(photo, size).tobytes())
    for side in (20, 30, 47, 100, 150, 383):  # crops smaller and larger than the model's 48
        h.update(resize(photo[:side, :side], (48, 48)).tobytes())
    assert h.hexdigest() == PINNED_MD5


@pytest.mark.parametrize("w, h, k", [(127, 128, 3), (190, 192, 2), (76, 64, 5), (95, 96, 4)])
def test_whole_factor_shrinks_are_plain_inter_area(photo, w, h, k):
    """Like a 640x480 camera frame to 320 or 128 wide (2x, 5x): exactly what cv2's INTER_AREA gave before."""
    img = photo[:h * k, :w * k]
    assert np.array_equal(resize(img, (w, h)), cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("side", [60, 100, 150, 233, 383])
def test_fractional_shrink_stays_close_to_inter_area(photo, side):
    crop = photo[:side, :side]
    diff = resize(crop, (48, 48)).astype(int) - cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(diff).mean() < 1.0 and np.abs(diff).max() <= 12  # bilinear stretch first: edges move a little


def test_growing_is_bilinear_exact(photo):
    small = photo[100:130, 100:130]
    assert np.array_equal(resize(small, (48, 48)), cv2.resize(small, (48, 48), interpolation=cv2.INTER_LINEAR_EXACT))


def test_unchanged_size_is_the_same_array(photo):
    face = photo[:48, :48]
    assert resize(face, (48, 48)) is face and face_to_input(face) is face


def test_crop_face_uses_it(photo):
    box = (90, 80, 200, 210)
    x, y, w, h = expand_box(box, photo.shape)
    assert np.array_equal(crop_face(photo, box), resize(photo[y:y + h, x:x + w], (48, 48)))
