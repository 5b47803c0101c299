"""device.macs on the shipped default (no TensorFlow): its count against the one worked out by hand."""
from __future__ import annotations

from pathlib import Path

import pytest

from device.interpreter import ModelError
from device.macs import format_macs, macs_by_op, macs_per_face

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INT8 = ROOT / "device" / "models" / "default" / "model_int8.tflite"


def vgg_cnn_pass(widths=(32, 64, 128, 256), classes=7) -> dict[str, int]:
    """One vgg_cnn pass by hand: two 3x3 convs per block at 48, 24, 12, 6 pixels a side, then Dense w -> w -> 7."""
    conv, side, cin = 0, 48, 1
    for w in widths:
        conv += side * side * w * 9 * cin + side * side * w * 9 * w
        side, cin = side // 2, w
    return {"CONV_2D": conv, "FULLY_CONNECTED": widths[-1] * widths[-1] + widths[-1] * classes}


def test_shipped_default_is_two_vgg_cnn_passes():
    if not DEFAULT_INT8.is_file():
        pytest.skip("no shipped default model")
    one = vgg_cnn_pass()
    # the default is a flip-TTA file: vgg_cnn on the face and on its mirror, both in the file
    assert macs_by_op(DEFAULT_INT8) == {k: 2 * v for k, v in one.items()}
    assert macs_per_face(DEFAULT_INT8) == 235_032_064
    assert format_macs(macs_per_face(DEFAULT_INT8)) == "235.0 M"


def test_bad_files_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        macs_per_face(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="not a loadable TFLite model"):
        macs_per_face(junk)


def test_format_macs():
    assert [format_macs(n) for n in (235_032_064, 5_731_720, 134_656, 1_792)] == ["235.0 M", "5.73 M", "0.13 M", "1.8 k"]


def test_command_and_bench_print_it(capsys):
    if not DEFAULT_INT8.is_file():
        pytest.skip("no shipped default model")
    from device.bench import format_table, run_bench
    from device.errors import run_click
    from device.macs import cli
    assert run_click(cli, [str(DEFAULT_INT8)]) == 0
    assert "235,032,064 MACs per face = 235.0 M (CONV_2D 234.9 M, FULLY_CONNECTED 0.13 M)" in capsys.readouterr().out
    assert run_click(cli, []) == 2 and run_click(cli, ["missing.tflite"]) == 3
    assert capsys.readouterr().err.count("error: ") == 2
    r = run_bench(None, DEFAULT_INT8, runs=2, warmup=1)
    assert r["models"]["int8"]["macs"]["per_face"] == 235_032_064
    assert "int8 multiply-accumulates per face: 235.0 M (CONV_2D 234.9 M" in format_table(r)


def test_bench_without_an_op_list(monkeypatch):
    """An old tflite_runtime cannot list ops: the count says so, bench times the model without it."""
    if not DEFAULT_INT8.is_file():
        pytest.skip("no shipped default model")
    import device.macs
    from device.bench import format_table, run_bench
    real = device.macs.interpreter_class()

    class Old:
        def __init__(self, model_path, **kw):
            self._interp = real(model_path=model_path)

        def __getattr__(self, name):
            if name == "_get_ops_details":
                raise AttributeError(name)
            return getattr(self._interp, name)

    monkeypatch.setattr(device.macs, "interpreter_class", lambda: Old)
    with pytest.raises(device.macs.MacsUnavailable, match="pip install ai-edge-litert"):
        macs_per_face(DEFAULT_INT8)
    r = run_bench(None, DEFAULT_INT8, runs=2, warmup=1)
    assert "macs" not in r["models"]["int8"] and "multiply-accumulates" not in format_table(r)
    assert r["models"]["int8"]["latency"]["1"]["runs"] == 2
