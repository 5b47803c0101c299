"""Fuzzed FER2013 files (Hypothesis): real sample.csv rows, broken the ways real files break.

Each generated file (plain or gzip) holds real rows, some mutated: wrong pixel counts,
non-numeric or out-of-range pixels, labels outside 0-6, an unknown Usage, extra or missing
columns, garbage lines, with a BOM, CRLF endings, blank lines, quoted or padded fields, another
column order, a truncated or damaged gzip. The property: the file either loads with exactly the
rows it holds (every pixel, label and Usage), or fails with ``train.data.DataError`` whose message
is one line starting with the file's name and, for a bad row, naming a line that is bad.
Never another exception, never a silently wrong face.

    pytest tests/train/test_fuzz_data.py --hypothesis-show-statistics   # cases run, outcomes
"""
from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")  # the dev extra (pyproject.toml)
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from train.data import DataError, load_fer2013  # noqa: E402

USAGES = ("Training", "PublicTest", "PrivateTest")
SETTINGS = dict(deadline=None, derandomize=True, database=None,  # the same cases on every run and in CI
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
GOOD = ("plain", "plain", "plain", "quoted", "padded", "tabs")
BAD = ("pixel_count", "pixel_text", "pixel_range", "label", "usage", "extra_field", "missing_field", "garbage")
BLANKS = (b"", b"   ", b"\t", b" \t ")
WRONG_USAGES = ("training", "TRAINING", "Train", "Test", "Validation", "PrivateTest2", "Public Test", "", "-")
# 4294967301 is 5 modulo 2**32: numpy's int32 parse turned it into a valid pixel without a word.
HUGE = (256, 300, 999, 1000, 4294967296 + 5, 2**63 + 5, 2**64 + 200, -1, -255, -(2**32) + 5)
NOT_INTEGERS = ("x", "1.5", "+3", "0_3", "0x1f", "nan", "3e2", "--5", "٣", "\x00", "½")


@dataclass(frozen=True)
class Row:
    label: int
    pixels: tuple[str, ...]
    usage: str

    def face(self) -> np.ndarray:
        return np.array([int(p) for p in self.pixels], np.uint8).reshape(48, 48)


@pytest.fixture(scope="module")
def real_rows(sample_csv) -> list[Row]:
    """sample.csv's rows, read here with plain string splitting (not the loader under test)."""
    lines = Path(sample_csv).read_text().splitlines()
    assert lines[0] == "emotion,pixels,Usage"
    rows = []
    for ln in lines[1:]:
        label, pixels, usage = ln.split(",")
        rows.append(Row(int(label), tuple(pixels.split(" ")), usage))
    assert len(rows) == 420
    return rows


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def not_integer_text():
    """Non-empty tokens without whitespace, commas, quotes (a CSV field's own) or newlines that
    are not plain integers."""
    free = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters=',"'),
                   min_size=1, max_size=8)
    return st.one_of(st.sampled_from(NOT_INTEGERS), free).filter(
        lambda s: "," not in s and not s.isspace() and not re.fullmatch(r"-?[0-9]+", s)
        and not any(c in s for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85"))


def out_of_range():
    return st.one_of(st.sampled_from(HUGE), st.integers(256, 2**70), st.integers(-(2**70), -1)).map(str)


def render(fields: dict, columns: list[str], how: str) -> bytes:
    """One CSV line for ``fields`` in ``columns`` order, quoted or padded as ``how`` says."""
    vals = [fields[c] for c in columns]
    if how == "quoted":
        vals = [f'"{v}"' for v in vals]
    elif how == "padded":
        vals = [f" {v} " for v in vals]
    return ",".join(vals).encode("utf-8")


@st.composite
def row_line(draw, rows: list[Row], columns: list[str]) -> tuple[bytes, Row | None]:
    """A real row, kept good (-> the Row it must load as) or broken (-> None)."""
    row = rows[draw(st.integers(0, len(rows) - 1))]
    kind = draw(st.sampled_from(GOOD + BAD))
    event(f"row: {kind}")
    px = list(row.pixels)
    fields = {"emotion": str(row.label), "usage": row.usage, "note": draw(st.sampled_from(["", "x", "note 1"]))}
    sep = "\t" if kind == "tabs" else " "
    bad = kind in BAD
    if kind == "pixel_count":
        n = draw(st.integers(1, 5))
        px = px[:-n] if draw(st.booleans()) else px + [str(draw(st.integers(0, 255))) for _ in range(n)]
    elif kind == "pixel_text":
        px[draw(st.integers(0, len(px) - 1))] = draw(not_integer_text())
    elif kind == "pixel_range":
        px[draw(st.integers(0, len(px) - 1))] = draw(out_of_range())
    elif kind == "label":
        fields["emotion"] = draw(st.one_of(st.integers(7, 2**40).map(str), st.integers(-(2**40), -1).map(str),
                                           not_integer_text(), st.just("")))
    elif kind == "usage":
        fields["usage"] = draw(st.one_of(st.sampled_from(WRONG_USAGES),
                                         st.text("abcdefghijklmnopqrstuvwxyzTPR", min_size=1, max_size=12)
                                         .filter(lambda u: u not in USAGES)))
    fields["pixels"] = sep.join(px)
    line = render(fields, columns, "plain" if bad else kind)
    if kind == "extra_field":
        line += b"," + draw(st.sampled_from([b"", b"x", b"0", b"Training"]))
    elif kind == "missing_field":
        line = line.rsplit(b",", 1)[0]
    elif kind == "garbage":
        line = draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b.strip()))
    return line, (None if bad else row)


@st.composite
def fer_file(draw, rows: list[Row]) -> dict:
    """A whole file: header, rows (good and bad), blank lines, endings, BOM, compression."""
    columns = draw(st.permutations(["emotion", "pixels", "usage"]))
    if draw(st.booleans()):
        columns.insert(draw(st.integers(0, 3)), "note")
    header_case = draw(st.sampled_from(["lower", "kaggle", "upper", "quoted"]))
    names = {"lower": {}, "kaggle": {"usage": "Usage"}, "upper": {c: c.upper() for c in columns},
             "quoted": {c: f'"{c}"' for c in columns}}[header_case]
    items: list[tuple[bytes, object]] = []  # (line, Row | None = bad | "blank")
    for _ in range(draw(st.integers(1, 6))):
        items.append(draw(row_line(rows, columns)))
    for _ in range(draw(st.integers(0, 3))):
        items.insert(draw(st.integers(0, len(items))), (draw(st.sampled_from(BLANKS)), "blank"))
    if draw(st.booleans()):  # trailing blank lines, as editors leave them
        items.append((b"", "blank"))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    bom = draw(st.booleans())
    header = ",".join(names.get(c, c) for c in columns).encode()
    body = eol.join([header] + [line for line, _ in items]) + (eol if draw(st.booleans()) else b"")
    content = (b"\xef\xbb\xbf" if bom else b"") + body
    packing = draw(st.sampled_from(["plain", "plain", "gzip", "gzip_truncated", "gzip_damaged"]))
    data = content
    if packing != "plain":
        data = gzip.compress(content, mtime=0)
        if packing == "gzip_truncated":
            data = data[:draw(st.integers(0, len(data) - 1))]
        elif packing == "gzip_damaged":
            k = draw(st.integers(0, len(data) - 1))
            data = data[:k] + bytes([data[k] ^ draw(st.integers(1, 255))]) + data[k + 1:]
    ending = "CRLF" if eol == b"\r\n" else "LF"
    event(f"file: {packing}, {ending}{', BOM' if bom else ''}")
    good = [r for _, r in items if isinstance(r, Row)]
    bad_lines = {i + 2 for i, (_, r) in enumerate(items) if r is None}  # line 1 is the header
    return dict(data=data, content=content, packing=packing, good=good, bad_lines=bad_lines,
                suffix=".csv.gz" if packing != "plain" else ".csv")


def check(path: Path, case: dict) -> None:
    """The property: the right rows, or one DataError line naming the file (and a bad line)."""
    readable = case["packing"] == "plain"
    if not readable:
        try:
            readable = gzip.decompress(case["data"]) == case["content"]
        except Exception:  # noqa: BLE001 - the oracle: this gzip does not give the content back
            readable = False
    try:
        ds = load_fer2013(path)
    except DataError as e:
        msg = str(e)
        assert "\n" not in msg and "\r" not in msg, msg
        assert msg.startswith(f"{path}:"), msg
        if readable:
            assert case["bad_lines"], f"a good file was refused: {msg}"
            named = re.match(rf"{re.escape(str(path))}:(\d+): ", msg)
            assert named and int(named.group(1)) in case["bad_lines"], (msg, sorted(case["bad_lines"]))
            event("outcome: DataError naming a bad line")
        else:
            event("outcome: DataError, unreadable gzip")
        return
    assert readable and not case["bad_lines"], "a broken file loaded without an error"
    good = case["good"]
    assert len(ds) == len(good)
    assert ds.labels.tolist() == [r.label for r in good]
    assert ds.usage.tolist() == [r.usage for r in good]
    assert np.array_equal(ds.faces, np.stack([r.face() for r in good]))
    event("outcome: loaded, every face right")


@settings(max_examples=400, **SETTINGS)
@given(data=st.data())
def test_fuzzed_small_files(real_rows, work, data):
    case = data.draw(fer_file(real_rows))
    path = work / f"fuzz{case['suffix']}"
    path.write_bytes(case["data"])
    check(path, case)


@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_one_bad_row_in_the_whole_sample(real_rows, work, data):
    """All 420 rows (the loader's fast path) with one row broken somewhere: the slow check finds it."""
    k = data.draw(st.integers(0, len(real_rows) - 1))
    line, row = data.draw(row_line(real_rows, ["emotion", "pixels", "usage"]))
    lines = [b"emotion,pixels,Usage"] + [render({"emotion": str(r.label), "pixels": " ".join(r.pixels),
                                                 "usage": r.usage}, ["emotion", "pixels", "usage"], "plain")
                                         for r in real_rows]
    lines[k + 1] = line
    content = b"\n".join(lines) + b"\n"
    good = list(real_rows)
    good[k] = row
    case = dict(data=content, content=content, packing="plain", good=good, bad_lines=set() if row else {k + 2})
    path = work / "whole.csv"
    path.write_bytes(content)
    check(path, case)


def test_the_wrapping_pixel_is_refused(real_rows, work):
    """The bug the fuzzing found: 4294967301 (5 modulo 2**32) loaded as a pixel of 5."""
    r = real_rows[0]
    px = list(r.pixels)
    px[100] = str(2**32 + 5)
    path = work / "wrap.csv"
    path.write_text(f"emotion,pixels,Usage\n{r.label},{' '.join(px)},{r.usage}\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:2: pixel 101 = 4294967301 outside 0..255$"):
        load_fer2013(path)
