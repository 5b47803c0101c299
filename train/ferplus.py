"""FER+ votes (Barsoum et al., ICMI 2016) for FER2013's faces: reading them, and the label schemes.

FER+ had ten annotators vote on every FER2013 image: one column per emotion, plus ``unknown`` (an
unclear face) and ``NF`` (not a face). Its file is line-aligned with fer2013.csv: row i votes on
row i's face, with the same ``Usage``. numpy only (``convert`` imports this without Keras).

    votes = read_votes("ferplus_labels.csv", ds)        # checked against the FER2013 file's rows
    fp = relabel(ds, votes, "soft")                      # NF and unclear faces gone, labels = majority
    split = run_split(ds, fp, "official", 0, 0.1)          # FER2013's split, restricted; val/test majority-labelled
    fp.targets(split.train, "pld", seed, epoch)          # what model.fit gets as y

Schemes (``SCHEMES``): ``majority`` trains on the emotion with most votes and drops ties and faces
where ``unknown`` or ``NF`` have the most votes, as Barsoum et al. report FER+; ``soft`` trains
against the vote distribution over the 8 emotions (their "cross-entropy" scheme); ``pld`` draws one
label per face per epoch from that distribution (their "probabilistic label drawing"); soft and pld
train on every face an emotion wins over ``unknown`` and ``NF``, ties between emotions included.
Every scheme is validated and tested on majority labels, so their figures compare. NF faces never
enter training or evaluation. (Microsoft's FERPlus training code also discards single votes as
outliers before counting; these rules count every vote.)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.contract import LABELS as FER2013_LABELS

from .data import Dataset, DataError, Split, make_split

# The 8 FER+ emotions in a ferlite model's output order: FER2013's seven in FER2013's order, then
# Contempt. Why this order and not FER+'s own (neutral, happiness, ...): output k means the same
# emotion in a FER2013 and a FER+ model for k < 7, so a FER+ model's first seven outputs are scored
# against FER2013's labels by dropping the last one (python -m convert crosscheck), FER2013's
# integer labels stay valid FER+ labels, and tables line up column by column. Contempt, which
# FER2013 lacks, goes last.
LABELS: tuple[str, ...] = (*FER2013_LABELS, "Contempt")
LABEL_SETS: dict[str, tuple[str, ...]] = {"fer2013": FER2013_LABELS, "ferplus": LABELS}
SCHEMES = ("majority", "soft", "pld")
# fer2013new.csv's header, as Microsoft publishes it (and ../shared/data/ferplus/ferplus_labels.csv).
HEADER = ("Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
          "contempt", "unknown", "NF")
# FER+ emotion column -> our label name (the columns come in FER+'s order, the outputs in LABELS order).
COLUMN_LABEL = {"neutral": "Neutral", "happiness": "Happy", "surprise": "Surprise", "sadness": "Sad",
                "anger": "Angry", "disgust": "Disgust", "fear": "Fear", "contempt": "Contempt"}
N_EMOTIONS = len(LABELS)
UNKNOWN, NOT_FACE = N_EMOTIONS, N_EMOTIONS + 1  # vote columns after the 8 emotions, in ``Votes.counts``
# FER2013's Usage -> FER+'s split (folder) name; either may stand in the votes file's Usage column.
FERPLUS_SPLITS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
USAGE_OF = {**{u: u for u in FERPLUS_SPLITS}, **{v: u for u, v in FERPLUS_SPLITS.items()}}
# Where --ferplus is looked for when not given, relative to the FER2013 file's folder: beside it,
# then the shared layout (fer2013/fer2013.csv.gz next to ferplus/ferplus_labels.csv).
DEFAULT_NAMES = ("ferplus_labels.csv", "fer2013new.csv")
DEFAULT_FOLDERS = (".", "../ferplus")


class FerplusError(DataError):
    """The votes file cannot be used with this FER2013 file; the message names the file (and line)."""


@dataclass
class Votes:
    counts: np.ndarray   # (N, 10) int32: the 8 emotions in LABELS order, then unknown, NF
    usage: np.ndarray    # (N,) FER2013 usage names
    source: str
    sha256: str


def default_votes_path(data) -> Path | None:
    """The first ferplus_labels.csv / fer2013new.csv beside the FER2013 file or in ../ferplus from it."""
    folder = Path(data).parent
    for sub in DEFAULT_FOLDERS:
        for name in DEFAULT_NAMES:
            if (folder / sub / name).is_file():
                return Path(os.path.normpath(folder / sub / name))
    return None


def read_votes(path, ds: Dataset) -> Votes:
    """The votes file, checked against ``ds`` (the FER2013 file it labels): same row count, same Usage."""
    p = Path(path)
    if not p.is_file():
        raise FerplusError(f"{path}: no such FER+ votes file")
    try:
        raw = p.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise FerplusError(f"{path}: cannot read ({e})") from None
    lines = [(i + 1, ln.rstrip("\r")) for i, ln in enumerate(text.split("\n")) if ln.strip()]
    if not lines or tuple(c.strip() for c in lines[0][1].split(",")) != HEADER:
        got = lines[0][1][:100] if lines else "an empty file"
        raise FerplusError(f"{path}:1: expected the FER+ header {','.join(HEADER)}, got {got!r}")
    rows = lines[1:]
    if len(rows) != len(ds):
        raise FerplusError(f"{path}: {len(rows)} vote rows for {len(ds)} faces in {ds.source}: the votes must be "
                           "line-aligned with the FER2013 file (row i votes on face i)")
    counts = np.zeros((len(rows), len(HEADER) - 2), np.int32)
    usage = []
    column_of = {lab: col for col, lab in COLUMN_LABEL.items()}
    order = [HEADER.index(c) - 2 for c in (*(column_of[lab] for lab in LABELS), "unknown", "NF")]
    for k, (line_no, line) in enumerate(rows):
        fields = line.split(",")
        if len(fields) != len(HEADER):
            raise FerplusError(f"{path}:{line_no}: expected {len(HEADER)} comma-separated fields, got {len(fields)}")
        use = fields[0].strip()
        if use not in USAGE_OF:
            raise FerplusError(f"{path}:{line_no}: unknown Usage {use!r} (expected one of {', '.join(USAGE_OF)})")
        if USAGE_OF[use] != ds.usage[k]:
            raise FerplusError(f"{path}:{line_no}: Usage {use} but face {k + 1} of {ds.source} is {ds.usage[k]}: "
                               "the votes file is not line-aligned with the FER2013 file")
        votes = [v.strip() for v in fields[2:]]
        if not all(v.isdigit() for v in votes):
            raise FerplusError(f"{path}:{line_no}: votes must be whole numbers, got {','.join(votes)[:60]!r}")
        counts[k] = [int(votes[i]) for i in order]
        usage.append(USAGE_OF[use])
    if (counts.sum(axis=1) == 0).any():
        line_no = rows[int(np.flatnonzero(counts.sum(axis=1) == 0)[0])][0]
        raise FerplusError(f"{path}:{line_no}: a row without a single vote")
    return Votes(counts, np.asarray(usage, ds.usage.dtype), str(path), hashlib.sha256(raw).hexdigest())


# --- the label rules (vectorised over rows of vote counts, (N, 10)) ---------------------------------

def not_face(counts: np.ndarray) -> np.ndarray:
    """NF faces: as many ``NF`` votes as the most-voted emotion, or more. Never trained or scored on."""
    counts = np.asarray(counts)
    return counts[:, NOT_FACE] >= counts[:, :N_EMOTIONS].max(axis=1)


def clear(counts: np.ndarray) -> np.ndarray:
    """Faces an emotion wins: its votes beat ``unknown`` and ``NF`` (what soft and pld train on)."""
    counts = np.asarray(counts)
    top = counts[:, :N_EMOTIONS].max(axis=1)
    return (top > counts[:, UNKNOWN]) & (top > counts[:, NOT_FACE])


def majority_labels(counts: np.ndarray) -> np.ndarray:
    """The emotion with most votes (index into LABELS), or -1: a tie for the most votes, or ``unknown``
    or ``NF`` with the most votes (Barsoum et al.'s majority scheme leaves those faces out)."""
    counts = np.asarray(counts)
    top = counts.max(axis=1)
    single = (counts == top[:, None]).sum(axis=1) == 1
    winner = counts.argmax(axis=1)
    return np.where(single & (winner < N_EMOTIONS), winner, -1).astype(np.int64)


def soft_targets(counts: np.ndarray) -> np.ndarray:
    """The vote distribution over the 8 emotions (``unknown`` and ``NF`` left out), rows summing to 1."""
    emo = np.asarray(counts, np.float32)[:, :N_EMOTIONS]
    return emo / np.maximum(emo.sum(axis=1, keepdims=True), 1.0)


def draw_labels(counts: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """One label per face drawn from its vote distribution; the same (seed, epoch) draws the same labels,
    so a resumed run sees what an uninterrupted one would have."""
    cdf = np.cumsum(soft_targets(counts), axis=1)
    u = np.random.default_rng([seed, epoch]).random(len(cdf))[:, None]
    return np.minimum((u >= cdf).sum(axis=1), N_EMOTIONS - 1).astype(np.int64)


# --- a FER2013 Dataset relabelled with FER+ ---------------------------------------------------------

@dataclass
class FerplusData:
    ds: Dataset            # the faces kept by the scheme; ds.labels = majority label, else the top emotion
    counts: np.ndarray     # (len(ds), 10) their votes
    majority: np.ndarray   # (len(ds),) majority label or -1
    rows: np.ndarray       # their row numbers in the FER2013 file
    votes: Votes
    dropped: dict          # why faces were left out: {"not a face": n, ...}

    def targets(self, idx: np.ndarray, scheme: str, seed: int = 0, epoch: int = 0) -> np.ndarray:
        """model.fit's ``y`` for faces ``idx``: integer labels (majority, pld) or (n, 8) distributions (soft)."""
        if scheme == "majority":
            return self.majority[idx]
        if scheme == "soft":
            return soft_targets(self.counts[idx])
        if scheme == "pld":
            return draw_labels(self.counts[idx], seed, epoch)
        raise FerplusError(f"unknown label scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")


def relabel(ds: Dataset, votes: Votes, scheme: str) -> FerplusData:
    """``ds`` with FER+ labels: NF faces out; majority keeps faces with a majority label, soft and pld
    the faces an emotion wins (``clear``). ``ds.labels`` holds the majority label (the top emotion,
    first on a tie, where there is none: it only stratifies the split)."""
    if scheme not in SCHEMES:
        raise FerplusError(f"unknown label scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")
    counts, maj = votes.counts, majority_labels(votes.counts)
    nf = not_face(counts)
    keep = (maj >= 0) & ~nf if scheme == "majority" else clear(counts) & ~nf
    rows = np.flatnonzero(keep)
    labels = np.where(maj[rows] >= 0, maj[rows], counts[rows, :N_EMOTIONS].argmax(axis=1))
    kept = Dataset(ds.faces[rows], labels.astype(np.int64), ds.usage[rows], ds.source, ds.sha256)
    other = "no majority (a tie, or unknown most voted)" if scheme == "majority" else \
        "unclear (unknown has as many votes as the top emotion)"
    dropped = {"not a face": int(nf.sum()), other: int((~keep & ~nf).sum())}
    return FerplusData(kept, counts[rows], maj[rows], rows, votes, dropped)


def evaluable(split: Split, majority: np.ndarray) -> Split:
    """``split`` with only majority-labelled faces on its val and test sides (every scheme is selected
    and scored on majority labels); the training side keeps what the scheme trains on."""
    def keep(idx):
        return idx[majority[idx] >= 0]
    return Split(split.train, keep(split.val), keep(split.test), split.kind, split.test_name,
                 split.duplicate_groups, split.dropped)


def restrict(split: Split, rows: np.ndarray) -> Split:
    """``split`` (of the whole FER2013 file) narrowed to the faces at ``rows``, as positions among them."""
    def keep(idx):
        return np.flatnonzero(np.isin(rows, idx))
    return Split(keep(split.train), keep(split.val), keep(split.test), split.kind, split.test_name,
                 split.duplicate_groups, split.dropped)


def run_split(ds: Dataset, fp: FerplusData | None, kind: str, seed: int, val_fraction: float) -> Split:
    """A run's split: FER2013's own (``make_split`` of ``ds``), or for FER+ labels the same split restricted to
    the faces the scheme keeps, val and test to majority-labelled ones. Carving FER2013's file, not the relabelled
    faces, holds out exactly the faces a FER2013 run with this seed holds out, so a FER+ run warm-started from
    one (``train --init-from``) never validates or tests on a face that run trained on. Training and ``convert``
    both call this."""
    split = make_split(ds, kind, seed, val_fraction)
    return split if fp is None else evaluable(restrict(split, fp.rows), fp.majority)


def describe(fp: FerplusData, scheme: str) -> str:
    why = ", ".join(f"{n} {k}" for k, n in fp.dropped.items()) or "none"
    return f"FER+ labels ({scheme}) from {fp.votes.source}: {len(fp.ds)} faces kept; left out: {why}"


def load_labels(ds: Dataset, labels: str, ferplus, scheme: str) -> FerplusData | None:
    """A run's labels: None for FER2013's own (``ds`` as it is), else ``ds`` relabelled from the FER+
    votes in ``ferplus``. Training and ``convert`` both call this, so both see the same faces."""
    if labels not in LABEL_SETS:
        raise FerplusError(f"unknown label set {labels!r} (expected one of {', '.join(LABEL_SETS)})")
    if labels == "fer2013":
        return None
    if not ferplus:
        raise FerplusError("FER+ labels need the votes file (--ferplus PATH)")
    return relabel(ds, read_votes(ferplus, ds), scheme)
