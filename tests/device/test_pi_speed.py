"""device.pi_speed: the Pi estimates from XNNPACK's published MobileNet timings, on the real shipped files."""
from __future__ import annotations

from pathlib import Path

import pytest

from device import pi_speed as ps

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INT8 = ROOT / "device" / "models" / "default" / "model_int8.tflite"
SHORT = ROOT / "device" / "models" / "blazeface" / "face_detection_short_range.tflite"
DEFAULT_MACS = 235_032_064  # two vgg_cnn passes (tests/device/test_device_macs.py works it out by hand)


def test_a_mobilenet_gets_back_its_published_time():
    """Scaled to its own MACs, each MobileNet lands on XNNPACK's figure for it (4 threads), at one end of the
    range: MobileNet v2 is the slower per MAC on both boards, int8 and fp32."""
    for board in ("pi4", "pi3"):
        for kind in ps.KINDS:
            lo, hi = ps.ms_per_mac(board, kind)
            assert lo * 569e6 == pytest.approx(ps.XNNPACK_RPI[board][kind]["MobileNet v1 1.0X"])
            assert hi * 300e6 == pytest.approx(ps.XNNPACK_RPI[board][kind]["MobileNet v2 1.0X"])
    # 1 thread: 3-4x the 4-thread time; the Pi 3 column's high end is a Zero 2 W at 1.0 GHz (1.4x)
    assert ps.estimate_ms(300e6, "int8", "pi4")[1] == pytest.approx(17.0 * 4)
    assert ps.estimate_ms(569e6, "int8", "pi3")[0] == pytest.approx(46.0 * 3)
    assert ps.estimate_ms(300e6, "int8", "pi3")[1] == pytest.approx(30.0 * 4 * 1.4)


def test_the_shipped_default_on_each_board():
    e = ps.model_estimate(DEFAULT_INT8)
    assert e["macs"] == DEFAULT_MACS and e["kind"] == "int8"
    assert e["ms"]["pi4"] == pytest.approx([29.74, 53.27], abs=0.01)  # 235 M * 24/569 M * 3 .. * 17/300 M * 4
    assert e["ms"]["pi5"] == pytest.approx([29.74 / 3, 53.27 / 2], abs=0.01)
    assert e["ms"]["pi3"] == pytest.approx([57.00, 131.62], abs=0.01)  # 235 M * 46/569 M * 3 .. * 30/300 M * 4 * 1.4
    # the Pi 3 is slower than the Pi 4, and a Pi 5 faster, at both ends
    assert all(e["ms"]["pi5"][i] < e["ms"]["pi4"][i] < e["ms"]["pi3"][i] for i in (0, 1))


def test_blazeface_is_float_and_haar_scales_like_the_boards():
    assert ps.arithmetic(SHORT) == "fp32"
    assert ps.haar_ms("pi4") == pytest.approx((10.0, 1000 / 15 / 4))  # 15-25 fps at 640x480, a quarter of it
    assert ps.haar_ms("pi5") == pytest.approx((10.0 / 3, 1000 / 15 / 4 / 2))
    assert ps.haar_ms("pi3") == pytest.approx((10.0 * 114 / 77, 1000 / 15 / 4 * 79 / 46 * 1.4))
    with pytest.raises(ValueError):
        ps.estimate_ms(1e6, "int4", "pi4")


def test_the_table_has_a_pi3_column():
    lines = ps.table(DEFAULT_INT8)
    assert lines[0] == "| stage | what | Pi 4 (Cortex-A72) | Pi 5 (Cortex-A76) | Pi 3 / Zero 2 W (Cortex-A53) |"
    assert lines[2] == "| classify, per face | model_int8.tflite, 235.0 M MACs, int8 | 30-53 | 10-27 | 57-132 |"
    assert len(lines) == 6 and ps.span(4.2, 9.4) == "4.2-9.4"
