"""What scripts/gpu/ relies on, on small inputs (seconds): FER2013 packed and rebuilt byte for byte
(python -m train pack | unpack), and the teacher cache staged where the students read it
(python -m train stage-teacher-cache)."""
from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from device.errors import EXIT_INPUT, InputError
from train import teacher_cache

ROOT = Path(__file__).resolve().parents[2]


def kaggle_gz(path: Path, text: bytes) -> Path:
    """A .csv.gz written as ours was: zlib level 9, no name, mtime 0."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 8)
    body = c.compress(text) + c.flush()
    path.write_bytes(bytes.fromhex("1f8b08000000000002ff") + body + zlib.crc32(text).to_bytes(4, "little")
                     + len(text).to_bytes(4, "little"))
    assert gzip.decompress(path.read_bytes()) == text
    return path


def csv_text(n: int = 9, eol: bytes = b"\n") -> bytes:
    rng = np.random.default_rng(0)
    usages = ["Training", "PublicTest", "PrivateTest"]
    rows = [b"%d,%s,%s" % (i % 7, " ".join(map(str, rng.integers(0, 256, 2304))).encode(), usages[i % 3].encode())
            for i in range(n)]
    return eol.join([b"emotion,pixels,Usage", *rows]) + eol


def pack_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_pack_then_unpack_rebuilds_the_same_bytes(tmp_path, eol):
    src = kaggle_gz(tmp_path / "fer2013.csv.gz", csv_text(eol=eol))
    assert pack_cli("pack", src, tmp_path / "packed").returncode == 0
    dst = tmp_path / "there" / "fer2013.csv.gz"
    r = pack_cli("unpack", tmp_path / "packed", dst)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_pack_refuses_what_it_cannot_rebuild(tmp_path):
    padded = kaggle_gz(tmp_path / "padded.csv.gz", csv_text(3).replace(b",0,", b",00,").replace(b" 7 ", b" 07 "))
    r = pack_cli("pack", padded, tmp_path / "packed")
    assert r.returncode == EXIT_INPUT and r.stderr.startswith("error: ") and not (tmp_path / "packed").exists()
    other = tmp_path / "level6.csv.gz"
    other.write_bytes(gzip.compress(csv_text(3), compresslevel=1, mtime=0))
    r = pack_cli("pack", other, tmp_path / "packed")
    assert r.returncode == EXIT_INPUT and r.stderr.count("\n") == 1 and "does not remake its gzip bytes" in r.stderr
    (tmp_path / "cut").mkdir()
    for name in ("faces.xz", "rows.json.gz"):
        (tmp_path / "cut" / name).write_bytes(b"not a pack")
    r = pack_cli("unpack", tmp_path / "cut", tmp_path / "out.csv.gz")
    assert r.returncode == EXIT_INPUT and "not a readable pack" in r.stderr and not (tmp_path / "out.csv.gz").exists()


def test_teacher_cache_is_staged_where_the_students_read_it(tmp_path):
    teacher = tmp_path / "teacher.tflite"
    teacher.write_bytes(b"t" * 100)
    key = json.dumps([[str(teacher), 100, 1_700_000_000_123_456_789], 5])
    cache = tmp_path / "cache.npz"
    np.savez(cache, probs=np.zeros((5, 7), np.float32), key=np.array(key))
    runs = [tmp_path / f"run-s{s}" for s in (1, 2)]
    r = subprocess.run([sys.executable, "-m", "train", "stage-teacher-cache", cache, *runs], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert teacher.stat().st_mtime_ns == 1_700_000_000_123_456_789  # train/distill.py's key matches again
    assert all((r / "teacher_probs.npz").read_bytes() == cache.read_bytes() for r in runs)
    teacher.write_bytes(b"t" * 99)
    with pytest.raises(InputError, match="missing or not 100 bytes"):
        teacher_cache.stage(cache, runs)
