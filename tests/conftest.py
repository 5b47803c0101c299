"""Shared fixtures: the real data in ../shared, found the same way locally and in CI."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from device.paths import shared_data

FER_DIR = shared_data("fer2013")
FACES_DIR = shared_data("faces")


def _require(path: Path) -> Path:
    """Real data is required in CI (fail loudly); elsewhere a missing folder skips the test."""
    if path.exists():
        return path
    msg = f"real test data missing: {path} (set FERLITE_SHARED to the shared/ folder)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    return _require(FER_DIR)


@pytest.fixture(scope="session")
def sample_csv(fer_dir) -> Path:
    return _require(fer_dir / "sample.csv")


@pytest.fixture(scope="session")
def fer_full_csv(fer_dir) -> Path:
    return _require(fer_dir / "fer2013.csv.gz")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return _require(FACES_DIR)


@pytest.fixture(scope="session")
def ferplus_csv() -> Path:
    return _require(shared_data("ferplus", "ferplus_labels.csv"))


@pytest.fixture(scope="session")
def sample_ferplus(tmp_path_factory, sample_csv, fer_full_csv, ferplus_csv) -> Path:
    """A folder with sample.csv and, beside it, FER+'s real votes for its 420 rows (ferplus_labels.csv,
    line-aligned): each sample line is found by its exact text in fer2013.csv.gz, whose row i the
    votes file's row i labels (../shared/data/ferplus/README.md)."""
    import gzip
    folder = tmp_path_factory.mktemp("ferplus_sample")
    full = [ln for ln in gzip.decompress(fer_full_csv.read_bytes()).split(b"\n")[1:] if ln.strip()]
    row_of: dict[bytes, int] = {}
    for i, line in enumerate(full):
        row_of.setdefault(line, i)
    sample = sample_csv.read_bytes()
    votes = ferplus_csv.read_bytes().split(b"\n")
    rows = [row_of[ln] for ln in sample.split(b"\n")[1:] if ln.strip()]
    (folder / "sample.csv").write_bytes(sample)
    (folder / "ferplus_labels.csv").write_bytes(b"\n".join([votes[0]] + [votes[r + 1] for r in rows]) + b"\n")
    return folder
