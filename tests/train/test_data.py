"""Loader, bad-input errors and leak-free splits (numpy only: fast)."""
from __future__ import annotations

import gzip
import time

import cv2
import numpy as np
import pytest

from device.contract import LABELS
from train.data import DataError, duplicate_groups, load_fer2013, make_split

HEADER = "emotion,pixels,Usage\n"


def _row(label=0, pixels=None, usage="Training"):
    pixels = " ".join(["7"] * 2304) if pixels is None else pixels
    return f"{label},{pixels},{usage}\n"


def test_sample_csv(sample_csv):
    ds = load_fer2013(sample_csv)
    assert ds.faces.shape == (420, 48, 48) and ds.faces.dtype == np.uint8
    assert ds.labels.dtype == np.int64
    assert np.bincount(ds.labels).tolist() == [60] * 7
    assert set(ds.usage) == {"Training"}
    assert ds.sha256 == "11f7da2a6a3c26351b9d6638fddb63074092af21f4f54a4fdea4f300536e9d89"
    assert ds.faces[0].ravel()[:5].tolist() == [70, 80, 82, 72, 58]  # README: first row of fer2013.csv


@pytest.mark.slow
def test_full_gz(fer_full_csv):
    t = time.process_time()  # CPU seconds, not wall time: a busy machine (training beside CI) must not fail it
    ds = load_fer2013(fer_full_csv)
    assert time.process_time() - t < 30  # a few seconds on an idle machine; guards against a pathological parser
    assert len(ds) == 32298
    assert ds.counts() == {"Training": [3995, 436, 4097, 7215, 4830, 3171, 4965],
                           "PublicTest": [467, 56, 496, 895, 653, 415, 607]}
    split = make_split(ds, "official", seed=0)
    assert split.test_name == "PublicTest" and len(split.test) == 3589
    assert split.duplicate_groups > 1000 and split.dropped > 0
    _assert_no_leak(ds, split)


def test_gzip_and_private_test(tmp_path):
    rows = [_row(i % 7, usage=u) for i, u in enumerate(["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7)]
    rows = [r.replace(" 7 7 ", f" {i} 7 ", 1) for i, r in enumerate(rows)]  # all rows distinct
    p = tmp_path / "f.csv.gz"
    p.write_bytes(gzip.compress((HEADER + "".join(rows)).encode()))
    ds = load_fer2013(p)
    assert len(ds) == 28 and (ds.usage == "PrivateTest").sum() == 7
    split = make_split(ds, "official")
    assert split.test_name == "PrivateTest" and len(split.val) == 7 and len(split.train) == 14


@pytest.mark.parametrize("body, line, words", [
    (_row() + _row(pixels=" ".join(["1"] * 2303)), 3, "2304 pixels"),
    (_row() + _row(pixels=" ".join(["1"] * 2303 + ["x"])), 3, "not a number"),
    (_row() + _row() + _row(pixels=" ".join(["1"] * 2303 + ["256"])), 4, "outside 0..255"),
    (_row(pixels=" ".join(["-1"] * 2304)), 2, "outside 0..255"),
    (_row() + _row(label=7), 3, "outside 0..6"),
    (_row(label="a"), 2, "not an integer"),
    (_row() + _row(usage="Valid"), 3, "unknown Usage"),
    (_row() + "3,1 2 3\n", 3, "expected 3 comma-separated fields"),
])
def test_bad_rows_name_the_line(tmp_path, body, line, words):
    p = tmp_path / "bad.csv"
    p.write_text(HEADER + body)
    with pytest.raises(DataError, match=f"bad.csv:{line}: .*{words}"):
        load_fer2013(p)


@pytest.mark.parametrize("content, words", [("", "empty file"), ("a,b,c\n1,2,3\n", "header"),
                                            (HEADER, "no data rows")])
def test_bad_files(tmp_path, content, words):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(DataError, match=words):
        load_fer2013(p)


def test_missing_path_and_bad_gzip(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_fer2013(tmp_path / "nope.csv")
    p = tmp_path / "x.csv.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(DataError, match="x.csv.gz"):
        load_fer2013(p)


def _write_img(path, value, size=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size, size, 3), value, np.uint8))


def test_image_folder(tmp_path):
    # Alphabetical order would put "Disgust" before "Angry"... and "happy" after "Fear": LABELS decides.
    _write_img(tmp_path / "train" / "happy" / "a.png", 10)
    _write_img(tmp_path / "train" / "ANGRY" / "b.png", 20, size=96)   # resized to 48x48
    _write_img(tmp_path / "train" / "Neutral" / "c.jpg", 30)
    _write_img(tmp_path / "test" / "disgust" / "d.png", 40)
    ds = load_fer2013(tmp_path)
    assert ds.faces.shape == (4, 48, 48)
    got = {(int(f[0, 0]), LABELS[l], u) for f, l, u in zip(ds.faces, ds.labels, ds.usage)}
    assert got == {(10, "Happy", "Training"), (20, "Angry", "Training"), (30, "Neutral", "Training"),
                   (40, "Disgust", "PublicTest")}
    assert len(ds.sha256) == 64 and ds.sha256 == load_fer2013(tmp_path).sha256


def test_image_folder_errors(tmp_path):
    _write_img(tmp_path / "a" / "train" / "joy" / "x.png", 1)
    with pytest.raises(DataError, match="unknown class folder"):
        load_fer2013(tmp_path / "a")
    bad = tmp_path / "b" / "train" / "sad" / "x.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="x.png: unreadable image"):
        load_fer2013(tmp_path / "b")


def _assert_no_leak(ds, split):
    groups = duplicate_groups(ds.faces)
    sides = [set(groups[s]) for s in (split.train, split.val, split.test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


def _with_duplicates(sample_csv):
    ds = load_fer2013(sample_csv)
    ds.faces[10:20] = ds.faces[0]      # one big group of pixel-identical faces
    ds.faces[100:103] = ds.faces[99]
    return ds


def test_random80_split(sample_csv):
    ds = _with_duplicates(sample_csv)
    split = make_split(ds, "random80", seed=3, val_fraction=0.1)
    _assert_no_leak(ds, split)
    n = len(ds)
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(n))
    assert abs(len(split.test) / n - 0.2) < 0.03
    per_class = np.bincount(ds.labels[split.test], minlength=7)
    assert per_class.min() >= 10 and per_class.max() <= 17  # stratified: ~12 of 60 each (+ a group of 11)
    again = make_split(ds, "random80", seed=3, val_fraction=0.1)
    assert all(np.array_equal(a, b) for a, b in zip((split.train, split.val, split.test),
                                                    (again.train, again.val, again.test)))
    other = make_split(ds, "random80", seed=4)
    assert not np.array_equal(other.test, split.test)
    assert split.duplicate_groups == make_split(load_fer2013(sample_csv), "random80").duplicate_groups + 2


def test_official_split_drops_leaks(sample_csv):
    ds = _with_duplicates(sample_csv)
    ds.usage[::5] = "PublicTest"
    split = make_split(ds, "official", seed=0, val_fraction=0.1)
    assert split.test_name == "PublicTest"
    _assert_no_leak(ds, split)
    assert split.dropped > 0
    assert len(split.train) + len(split.val) + split.dropped == (ds.usage == "Training").sum()
    with pytest.raises(DataError, match="random80"):
        make_split(load_fer2013(sample_csv), "official")
