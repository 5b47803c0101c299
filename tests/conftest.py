"""Shared fixtures: the real data in ../shared, found the same way locally and in CI."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FERLITE_SHARED", ROOT.parent / "shared"))
FER_DIR = SHARED / "data" / "fer2013"
FACES_DIR = SHARED / "data" / "faces"


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
