"""What a Raspberry Pi 4 / 5 should take per stage, ESTIMATED from published measurements (no Pi ran this).

    python scripts/docs/pi_speed_estimate.py [--model device/models/default/model_int8.tflite]

Counts the multiply-accumulates (MACs) of the classifier and of both BlazeFace models from their
.tflite graphs (device/macs.py), then scales published Raspberry Pi timings of MobileNets by MACs. Printed as a Markdown table for README.md ("Pi speed"). Replace it
with `python device/run.py bench` on a real Pi as soon as someone has one.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402

from device.detect import BLAZEFACE_DIR  # noqa: E402
from device.blazeface import FULL_RANGE, SHORT_RANGE  # noqa: E402
from device.macs import macs_per_face  # noqa: E402

DEFAULT_MODEL = ROOT / "device" / "models" / "default" / "model_int8.tflite"

# google/XNNPACK README.md, "Raspberry Pi" table: end2end-bench, Raspberry Pi 4 (BCM2711, ARM64),
# multi-threaded (4 threads), benchmarked Feb 8, 2022, per-channel INT8. ms per inference.
XNNPACK_PI4 = {"int8": {"MobileNet v1 1.0X": 24.0, "MobileNet v2 1.0X": 17.0},
               "fp32": {"MobileNet v1 1.0X": 77.0, "MobileNet v2 1.0X": 46.0}}
# MACs at 224x224: MobileNet v1 paper (Howard et al. 2017, Table 8: 569 M mult-adds),
# MobileNetV2 paper (Sandler et al. 2018, Table 4: 300 M multiply-adds).
REF_MACS = {"MobileNet v1 1.0X": 569e6, "MobileNet v2 1.0X": 300e6}
# One thread instead of four: assumed 3-4x slower (near-linear scaling; no published 1-thread Pi figure).
ONE_THREAD = (3.0, 4.0)
# Raspberry Pi 5 vs 4: "2-3x the CPU performance" (Raspberry Pi's launch claim, Sept 2023, as
# reported e.g. by ZDNet, "The Raspberry Pi 5 is here").
PI5_SPEEDUP = (2.0, 3.0)
# OpenCV Haar frontal face on a Pi 4 at 640x480: "15-25 FPS" (hesham.us, "Face Detection on the Pi",
# a blog; cascade parameters not given). The loop runs Haar on a 320-px-wide copy (a quarter of the pixels).
HAAR_PI4_640_FPS = (15.0, 25.0)


def pi4_ms(n_macs: float, kind: str) -> tuple[float, float]:
    """(low, high) ms on a Pi 4 with 4 threads: MACs times each reference model's ms per MAC."""
    per_mac = [ms / REF_MACS[m] for m, ms in XNNPACK_PI4[kind].items()]
    return n_macs * min(per_mac), n_macs * max(per_mac)


def span(lo: float, hi: float) -> str:
    return f"{lo:.0f}-{hi:.0f}" if hi >= 10 else f"{lo:.1f}-{hi:.1f}"


def rows(model: Path) -> list[tuple[str, str, tuple[float, float]]]:
    """(stage, what, Pi 4 ms range with 1 thread) per stage."""
    out = []
    for name, path, kind in (("classify, per face", model, "int8"),
                             ("detect: BlazeFace short range, per call", BLAZEFACE_DIR / SHORT_RANGE.file, "fp32"),
                             ("detect: BlazeFace full range, per call", BLAZEFACE_DIR / FULL_RANGE.file, "fp32")):
        n = macs_per_face(path)  # device.macs: the figure convert's report and bench print too
        lo, hi = pi4_ms(n, kind)
        out.append((name, f"{path.name}, {n / 1e6:.1f} M MACs, {kind}", (lo * ONE_THREAD[0], hi * ONE_THREAD[1])))
    haar = tuple(1000.0 / fps / 4 for fps in HAAR_PI4_640_FPS[::-1])  # a quarter of the pixels of 640x480
    out.append(("detect: Haar at 320 px wide, per call", "OpenCV cascade, blog figure scaled by pixels", haar))
    return out


@click.command()
@click.option("--model", default=str(DEFAULT_MODEL), show_default=True, type=click.Path(exists=True, dir_okay=False))
def main(model: str) -> None:
    click.echo("ESTIMATES from published measurements (sources in scripts/docs/pi_speed_estimate.py), 1 thread, ms:")
    click.echo("| stage | what | Pi 4 (Cortex-A72) | Pi 5 (Cortex-A76) |")
    click.echo("| --- | --- | ---: | ---: |")
    for stage, what, (lo, hi) in rows(Path(model)):
        click.echo(f"| {stage} | {what} | {span(lo, hi)} | {span(lo / PI5_SPEEDUP[1], hi / PI5_SPEEDUP[0])} |")


if __name__ == "__main__":
    main()
