"""What a Raspberry Pi 4, 5 and 3 / Zero 2 W should take per stage, ESTIMATED from published measurements
(no Pi ran this): a model's multiply-accumulates (device/macs.py) times the ms per MAC of MobileNets as
XNNPACK measured them on Raspberry Pis. Replace it with ``python device/run.py bench`` on a real Pi as
soon as someone has one.

    python -m device.pi_speed [--model device/models/default/model_int8.tflite]

prints the "Pi speed (estimates)" table of docs/INSTALL_PI.md; ``estimate_ms`` and ``model_estimate``
are what ``python -m convert pareto`` uses. Every figure is a (low, high) range in ms, 1 thread.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .blazeface import FULL_RANGE, SHORT_RANGE
from .detect import BLAZEFACE_DIR
from .errors import exit_with, run_click
from .macs import graph_interpreter, macs_per_face

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default" / "model_int8.tflite"

# google/XNNPACK README.md, "Raspberry Pi" table (commit fd2d933, "Update Raspberry Pi performance in README"):
# end2end-bench, multi-threaded (4 threads, one per core), "Benchmarked on Feb 8, 2022 ... on a Raspbian Buster
# build with CMake ... INT8 inference was evaluated on per-channel quantization schema". ms per inference.
#   pi4: column "RPi 4 (BCM2711, ARM64)" (Cortex-A72 at 1.5 GHz, a 64-bit build, as ferlite runs).
#   pi3: column "RPi 3+ (BCM2837B0)" (Cortex-A53 at 1.4 GHz). XNNPACK has no ARM64 column for it: this one is
#        Raspbian's 32-bit build. On the Pi 4 the ARM64 build ran INT8 15-17% faster and FP32 7-12% slower than
#        the 32-bit one (24 vs 29 and 17 vs 20 ms; 77 vs 72 and 46 vs 41 ms), less than the spread between the
#        two MobileNets, so the column is used as it is (a 64-bit Pi OS may run int8 somewhat faster).
XNNPACK_RPI = {
    "pi4": {"int8": {"MobileNet v1 1.0X": 24.0, "MobileNet v2 1.0X": 17.0},
            "fp32": {"MobileNet v1 1.0X": 77.0, "MobileNet v2 1.0X": 46.0}},
    "pi3": {"int8": {"MobileNet v1 1.0X": 46.0, "MobileNet v2 1.0X": 30.0},
            "fp32": {"MobileNet v1 1.0X": 114.0, "MobileNet v2 1.0X": 79.0}},
}
# MACs at 224x224: MobileNet v1 paper (Howard et al. 2017, Table 8: 569 M mult-adds),
# MobileNetV2 paper (Sandler et al. 2018, Table 4: 300 M multiply-adds).
REF_MACS = {"MobileNet v1 1.0X": 569e6, "MobileNet v2 1.0X": 300e6}
# One thread instead of four: assumed 3-4x slower (near-linear scaling; no published 1-thread Pi figure).
ONE_THREAD = (3.0, 4.0)
# Raspberry Pi 5 vs 4: "2-3x the CPU performance" (Raspberry Pi's launch claim, Sept 2023, as
# reported e.g. by ZDNet, "The Raspberry Pi 5 is here").
PI5_SPEEDUP = (2.0, 3.0)
# The same Cortex-A53 at a lower clock: the measured Pi 3B+ runs 1.4 GHz, a Pi 3B 1.2 GHz and a Zero 2 W
# 1.0 GHz (Raspberry Pi's product pages), so up to 1.4x slower; assumed to scale with the clock.
A53_CLOCK_SLOWDOWN = (1.0, 1.4 / 1.0)
# OpenCV Haar frontal face on a Pi 4 at 640x480: "15-25 FPS" (hesham.us, "Face Detection on the Pi",
# a blog; cascade parameters not given). The loop runs Haar on a 320-px-wide copy (a quarter of the pixels).
# No such figure for a Pi 5 or 3: scaled like the models (the Pi 5 claim; XNNPACK's Pi 3+ / Pi 4 FP32 ratio).
HAAR_PI4_640_FPS = (15.0, 25.0)

BOARDS = {"pi4": "Pi 4 (Cortex-A72)", "pi5": "Pi 5 (Cortex-A76)", "pi3": "Pi 3 / Zero 2 W (Cortex-A53)"}
KINDS = ("int8", "fp32")


def ms_per_mac(board: str, kind: str) -> tuple[float, float]:
    """(low, high) ms per MAC with 4 threads on a measured board (pi4, pi3): the two MobileNets' figures."""
    per = [ms / REF_MACS[m] for m, ms in XNNPACK_RPI[board][kind].items()]
    return min(per), max(per)


def estimate_ms(n_macs: float, kind: str, board: str) -> tuple[float, float]:
    """(low, high) ms for ``n_macs`` multiply-accumulates of ``kind`` (int8 | fp32) on ``board``, 1 thread."""
    if kind not in KINDS or board not in BOARDS:
        raise ValueError(f"kind must be one of {KINDS} and board one of {tuple(BOARDS)}, got {kind!r}, {board!r}")
    if board == "pi5":
        lo, hi = estimate_ms(n_macs, kind, "pi4")
        return lo / PI5_SPEEDUP[1], hi / PI5_SPEEDUP[0]
    lo, hi = ms_per_mac(board, kind)
    lo, hi = n_macs * lo * ONE_THREAD[0], n_macs * hi * ONE_THREAD[1]
    return (lo * A53_CLOCK_SLOWDOWN[0], hi * A53_CLOCK_SLOWDOWN[1]) if board == "pi3" else (lo, hi)


def haar_ms(board: str) -> tuple[float, float]:
    """(low, high) ms per Haar call at the loop's 320-px width: the Pi 4 blog figure for a quarter of its pixels,
    the Pi 5 by its claim, the Pi 3 / Zero 2 W by XNNPACK's Pi 3+ / Pi 4 FP32 MobileNet ratios and the clock."""
    lo, hi = (1000.0 / fps / 4 for fps in HAAR_PI4_640_FPS[::-1])
    if board == "pi5":
        return lo / PI5_SPEEDUP[1], hi / PI5_SPEEDUP[0]
    if board == "pi3":
        ratio = [XNNPACK_RPI["pi3"]["fp32"][m] / XNNPACK_RPI["pi4"]["fp32"][m] for m in REF_MACS]
        return lo * min(ratio) * A53_CLOCK_SLOWDOWN[0], hi * max(ratio) * A53_CLOCK_SLOWDOWN[1]
    return lo, hi


def arithmetic(path) -> str:
    """int8 when the file's multiply-accumulate ops take 8-bit activations (a full-integer file), else fp32
    (a float file, or one whose int8 weights are dequantized to float before they run)."""
    interp = graph_interpreter(path)
    dtype = {t["index"]: np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    for op in interp._get_ops_details():  # the op list macs.py reads too
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            return "int8" if dtype[int(op["inputs"][0])] in (np.int8, np.uint8) else "fp32"
    return "fp32"


def model_estimate(path, kind: str | None = None) -> dict:
    """A file's MACs per face, its arithmetic and the (low, high) ms estimate per board, 1 thread."""
    n = macs_per_face(path)
    kind = kind or arithmetic(path)
    return {"macs": n, "kind": kind, "ms": {b: [round(x, 3) for x in estimate_ms(n, kind, b)] for b in BOARDS}}


def span(lo: float, hi: float) -> str:
    """'30-53' or, under 10 ms, '4.2-9.4'."""
    return f"{lo:.0f}-{hi:.0f}" if hi >= 10 else f"{lo:.1f}-{hi:.1f}"


def stage_rows(model) -> list[tuple[str, str, dict]]:
    """(stage, what, {board: (low, high) ms}) for the classifier, both BlazeFace models and Haar."""
    out = []
    for name, path, kind in (("classify, per face", Path(model), None),  # None: as the file computes
                             ("detect: BlazeFace short range, per call", BLAZEFACE_DIR / SHORT_RANGE.file, "fp32"),
                             ("detect: BlazeFace full range, per call", BLAZEFACE_DIR / FULL_RANGE.file, "fp32")):
        e = model_estimate(path, kind)
        out.append((name, f"{path.name}, {e['macs'] / 1e6:.1f} M MACs, {e['kind']}", e["ms"]))
    out.append(("detect: Haar at 320 px wide, per call", "OpenCV cascade, blog figure scaled by pixels",
                {b: haar_ms(b) for b in BOARDS}))
    return out


def table(model) -> list[str]:
    """The Markdown table of docs/INSTALL_PI.md, "Pi speed (estimates)"."""
    lines = ["| stage | what | " + " | ".join(BOARDS.values()) + " |", "| --- | --- |" + " ---: |" * len(BOARDS)]
    return lines + [f"| {stage} | {what} | " + " | ".join(span(*ms[b]) for b in BOARDS) + " |"
                    for stage, what, ms in stage_rows(model)]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", default=str(DEFAULT_MODEL), show_default="device/models/default/model_int8.tflite",
              type=click.Path(exists=True, dir_okay=False))
def cli(model: str) -> None:
    """Estimated ms per stage on Raspberry Pis, 1 thread, from published measurements scaled by MACs."""
    click.echo("ESTIMATES from published measurements (sources in device/pi_speed.py), 1 thread, ms:")
    click.echo("\n".join(table(model)))


if __name__ == "__main__":
    exit_with(run_click(cli, prog_name="python -m device.pi_speed"))
