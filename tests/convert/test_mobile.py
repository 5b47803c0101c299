"""The fast tier's networks (train/models.py mobile_cnn*): their cost in the converted file, and int8 end to end."""
from __future__ import annotations

import numpy as np
import pytest

from device.macs import macs_per_face

# MACs a pass, as device.macs counts the converted file: the budgets docs/TRAINING.md quotes
PASS_MACS = {"mobile_cnn_small": (1.5e6, 2.5e6), "mobile_cnn": (5e6, 6e6), "mobile_cnn_wide": (10e6, 12e6)}


@pytest.mark.slow
@pytest.mark.parametrize("name", PASS_MACS)
def test_macs_per_pass(name, tmp_path):
    from convert.export import export_float32
    from train.models import build_model
    lo, hi = PASS_MACS[name]
    assert lo <= macs_per_face(export_float32(build_model(name, augment=False), tmp_path)) <= hi


@pytest.mark.slow
def test_mobile_cnn_with_mirror_is_int8_end_to_end_within_12m(tmp_path):
    """The fast tier's budget: mobile_cnn on the face and its mirror in one int8 file, no float op left."""
    from convert.export import export_int8, float_ops
    from train.models import averaged, build_model
    faces = np.random.default_rng(0).integers(0, 256, (32, 48, 48), dtype=np.uint8)
    path = export_int8(averaged([build_model("mobile_cnn", augment=False)], flip=True), tmp_path, faces)
    assert float_ops(path) == []
    assert macs_per_face(path) <= 12e6
