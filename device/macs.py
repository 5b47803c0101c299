"""Multiply-accumulates a ``.tflite`` file runs per face: a machine-independent cost figure.

Counted from the file itself with the LiteRT interpreter (no TensorFlow): every op the primary
graph runs, at batch 1, so a --flip-tta file (which runs the network on the face and on its
mirror) counts both passes. Only ops whose work is multiply-accumulates count; element-wise ops,
pooling, means and the softmax are a few per output value and are left out, as papers do.

    python -m device.macs device/models/default/model_int8.tflite [MORE.tflite ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from .errors import EnvironmentMissing, exit_with, run_click
from .interpreter import ModelError, interpreter_class


def _conv(out, ins):
    """CONV_2D(input, filter [Cout, kh, kw, Cin/groups]): each output value sums kh*kw*Cin/groups products."""
    return _n(out) * _n(ins[1][1:])


def _depthwise(out, ins):
    """DEPTHWISE_CONV_2D(input, filter [1, kh, kw, Cout]): each output value sums one kh*kw window."""
    return _n(out) * ins[1][1] * ins[1][2]


def _fully_connected(out, ins):
    """FULLY_CONNECTED(input, weights [units, in]): each output value sums ``in`` products."""
    return _n(out) * ins[1][-1]


def _conv3d(out, ins):
    """CONV_3D(input, filter [kd, kh, kw, Cin, Cout])."""
    return _n(out) * _n(ins[1][:4])


def _transpose_conv(out, ins):
    """TRANSPOSE_CONV(output_shape, filter [Cout, kh, kw, Cin], input): each input value scatters into
    kh*kw*Cout outputs."""
    return _n(ins[2]) * _n(ins[1][:3])


def _batch_matmul(out, ins):
    """BATCH_MATMUL(A, B) -> [..., M, N]: each output value sums K products. K is the side of A that is
    not M (the interpreter does not expose adj_x; when both sides equal M, K is M either way)."""
    a, m = ins[0], out[-2]
    return _n(out) * (a[-1] if a[-2] == m else a[-2])


def _n(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


# op name -> MACs from (output shape, input shapes); every other op counts zero
MAC_OPS = {"CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
           "CONV_3D": _conv3d, "TRANSPOSE_CONV": _transpose_conv, "BATCH_MATMUL": _batch_matmul}


class MacsUnavailable(EnvironmentMissing):
    """The installed interpreter cannot list a file's ops (an old tflite_runtime)."""


def graph_interpreter(path):
    """An interpreter that shows the file's own ops (no default delegate folds them into DELEGATE),
    with the input resized to one face so every tensor's shape is the per-face one."""
    cls = interpreter_class()
    resolver = getattr(sys.modules.get(cls.__module__), "OpResolverType", None)
    kwargs = {"experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if resolver else {}
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        interp = cls(model_path=str(path), **kwargs)
        for d in interp.get_input_details():
            interp.resize_tensor_input(d["index"], [1, *[int(s) for s in d["shape"][1:]]])
        interp.allocate_tensors()
    except Exception as e:  # LiteRT raises ValueError/RuntimeError with its own text
        raise ModelError(f"{path}: not a loadable TFLite model ({str(e).strip().splitlines()[0]})") from None
    return interp


def macs_by_op(path) -> dict[str, int]:
    """{op name: multiply-accumulates per face} for the ops of ``path`` that do any, largest first."""
    interp = graph_interpreter(path)
    shape = {t["index"]: [int(s) for s in t["shape"]] for t in interp.get_tensor_details()}
    ops = getattr(interp, "_get_ops_details", None)  # LiteRT's op list: no public API has one
    if ops is None:
        raise MacsUnavailable("this LiteRT interpreter cannot list a model's ops: pip install ai-edge-litert")
    total: dict[str, int] = {}
    for op in ops():
        name = op["op_name"]
        if name not in MAC_OPS:
            continue
        ins = [shape.get(int(i), []) for i in op["inputs"]]
        n = MAC_OPS[name](shape[int(op["outputs"][0])], ins)
        total[name] = total.get(name, 0) + int(n)
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def macs_per_face(path) -> int:
    """Every multiply-accumulate ``path`` runs for one face (all passes of a flip-TTA or ensemble file)."""
    return sum(macs_by_op(path).values())


def macs_record(path) -> dict:
    """What reports store: the total per face and its split by op."""
    by_op = macs_by_op(path)
    return {"per_face": sum(by_op.values()), "by_op": by_op}


def format_macs(n: int) -> str:
    """235032064 -> '235.0 M', 5731720 -> '5.73 M', 134656 -> '0.13 M', 1792 -> '1.8 k' (millions, as papers quote)."""
    if n >= 1e7:
        return f"{n / 1e6:.1f} M"
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def describe(record: dict) -> str:
    """'235.0 M (CONV_2D 234.9 M, FULLY_CONNECTED 0.13 M)': one line for bench and this module's command."""
    return (f"{format_macs(record['per_face'])} ("
            + ", ".join(f"{op} {format_macs(n)}" for op, n in record["by_op"].items()) + ")")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, required=True)
def cli(files):
    """Multiply-accumulates per face of each .tflite FILE (every pass it runs, batch 1)."""
    for f in files:
        r = macs_record(f)
        click.echo(f"{f}: {r['per_face']:,} MACs per face = {describe(r)}")


if __name__ == "__main__":
    exit_with(run_click(cli, prog_name="python -m device.macs"))
