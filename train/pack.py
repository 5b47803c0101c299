"""Carry a FER2013 ``.csv.gz`` somewhere its own bytes do not fit, and rebuild it there byte for byte.

    python -m train pack   ../shared/data/fer2013/fer2013.csv.gz .gpu/data
    python -m train unpack .gpu/data ../shared/data/fer2013/fer2013.csv.gz

Why: a lent GPU machine takes at most 64 MiB of files per call, and our fer2013.csv.gz is 84.6 MB. The
faces compress to about 50 MB with LZMA after a vertical delta filter (each pixel minus the one above
it), and the CSV text, then the gzip file, are rebuilt from them exactly: every run records the data
file's sha256 (``train/data.py``), and a run trained on other bytes could not be checked against its
teachers or paired with runs trained here. ``unpack`` refuses to write a file whose sha256 differs.

Works for any Kaggle-format file, PrivateTest rows included, whose text is ``emotion,pixels,Usage``
rows with single spaces between plain numbers; ``pack`` checks that its rebuild is exact before it writes.
numpy, click and the standard library only.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import zlib
from pathlib import Path

import click
import numpy as np

from device.errors import InputError

FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 48},  # 48 bytes back: the pixel above, in a 48-pixel row
           {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
FACES, ROWS = "faces.xz", "rows.json.gz"
GZIP_LEVEL, GZIP_MEMLEVEL = 9, 8  # zlib's deflate at these settings made our file (checked by pack)


class PackError(InputError):
    """A file this cannot pack, or a pack it cannot rebuild: nothing is written."""


def parse(text: bytes) -> tuple[bytes, np.ndarray, list[int], list[str]]:
    header, *rows = text.split(b"\n")
    if rows and rows[-1] == b"":
        rows.pop()
    emotions, usages, faces = [], [], np.empty((len(rows), 2304), np.uint8)
    for i, row in enumerate(rows):
        emotion, pixels, usage = row.split(b",")
        emotions.append(int(emotion))
        usages.append(usage.decode())
        faces[i] = np.array(pixels.split(b" "), np.uint8)
    return header, faces, emotions, usages


NUMBERS = [str(v).encode() for v in range(256)]  # a lookup, 3x faster than formatting 74M pixels


def render(header: bytes, faces: np.ndarray, emotions: list[int], usages: list[str]) -> bytes:
    lines = [header] + [b"%d,%s,%s" % (e, b" ".join([NUMBERS[v] for v in f.tolist()]), u.encode())
                        for e, f, u in zip(emotions, faces, usages)]
    return b"\n".join(lines) + b"\n"


def deflate(text: bytes) -> bytes:
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15, GZIP_MEMLEVEL)
    return c.compress(text) + c.flush()


def gzip_bytes(gz_header: bytes, text: bytes) -> bytes:
    trailer = zlib.crc32(text).to_bytes(4, "little") + (len(text) & 0xFFFFFFFF).to_bytes(4, "little")
    return gz_header + deflate(text) + trailer


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def pack(src: Path, folder: Path):
    """Pack a FER2013 .csv.gz into FOLDER: LZMA-compressed faces and the rows (python -m train unpack rebuilds it)."""
    raw = src.read_bytes()
    if raw[:2] != b"\x1f\x8b" or raw[3] != 0:
        raise PackError(f"{src}: not a plain gzip file (no name or extra fields in its header)")
    text = gzip.decompress(raw)
    try:
        header, faces, emotions, usages = parse(text)
    except ValueError as e:  # a row without three fields, or a pixel that is not one number
        raise PackError(f"{src}: not Kaggle's emotion,pixels,Usage rows ({e})") from None
    if render(header, faces, emotions, usages) != text:
        raise PackError(f"{src}: its text is not in the one layout this rebuilds (single spaces, no leading zeros)")
    if gzip_bytes(raw[:10], text) != raw:
        raise PackError(f"{src}: zlib level {GZIP_LEVEL} does not remake its gzip bytes")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FACES).write_bytes(lzma.compress(faces.tobytes(), lzma.FORMAT_XZ, filters=FILTERS))
    (folder / ROWS).write_bytes(gzip.compress(json.dumps({
        "sha256": hashlib.sha256(raw).hexdigest(), "gzip_header": raw[:10].hex(), "header": header.decode(),
        "emotions": emotions, "usages": usages}).encode()))
    click.echo(f"{src} ({len(raw)} bytes) -> {folder}: {(folder / FACES).stat().st_size} bytes of faces")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
def unpack(folder: Path, dst: Path):
    """Rebuild the packed FER2013 .csv.gz in FOLDER as DST, byte for byte (checked by its sha256)."""
    try:
        rows = json.loads(gzip.decompress((folder / ROWS).read_bytes()))
        faces = np.frombuffer(lzma.decompress((folder / FACES).read_bytes()), np.uint8).reshape(-1, 2304)
    except (lzma.LZMAError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as e:  # truncated or foreign
        raise PackError(f"{folder}: not a readable pack ({e})") from None
    text = render(rows["header"].encode(), faces, rows["emotions"], rows["usages"])
    raw = gzip_bytes(bytes.fromhex(rows["gzip_header"]), text)
    if hashlib.sha256(raw).hexdigest() != rows["sha256"]:
        raise PackError(f"rebuilt bytes differ from the packed file's (sha256 {rows['sha256'][:12]}...)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    tmp.write_bytes(raw)
    tmp.replace(dst)
    click.echo(f"{folder} -> {dst} ({len(raw)} bytes, sha256 {rows['sha256'][:12]}... as packed)")

