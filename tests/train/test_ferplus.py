"""FER+ votes (train/ferplus.py): the label rules, reading the votes file, the split, the CLI, and
a training step with each scheme on sample.csv with FER+'s real votes for its rows."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from device.contract import LABELS as FER2013_LABELS
from train.data import Dataset, load_fer2013, make_split
from train.ferplus import (FERPLUS_SPLITS, HEADER, LABELS, SCHEMES, FerplusError, Votes, clear, draw_labels,
                           majority_labels, not_face, read_votes, relabel, run_split,
                           soft_targets)
from train_cli import run_train  # tests/train/train_cli.py

A, D, F, H, S, U, N, C, UNK, NF = range(10)  # columns of Votes.counts: LABELS order, then unknown, NF


def votes(*spec: dict) -> np.ndarray:
    """Rows of vote counts from {column: votes}."""
    out = np.zeros((len(spec), 10), np.int32)
    for i, row in enumerate(spec):
        for col, n in row.items():
            out[i, col] = n
    return out


def votes_csv(counts: np.ndarray, usage) -> str:
    """A votes file in FER+'s own column order (neutral, happiness, ...), as Microsoft publishes it."""
    ours = {lab: k for k, lab in enumerate(LABELS)}
    fer_cols = {"neutral": "Neutral", "happiness": "Happy", "surprise": "Surprise", "sadness": "Sad",
                "anger": "Angry", "disgust": "Disgust", "fear": "Fear", "contempt": "Contempt"}
    lines = [",".join(HEADER)]
    for k, (row, use) in enumerate(zip(counts, usage)):
        cells = [str(row[ours[fer_cols[c]]]) for c in HEADER[2:10]] + [str(row[UNK]), str(row[NF])]
        lines.append(",".join([use, f"fer{k:07d}.png", *cells]))
    return "\n".join(lines) + "\n"


def votes_of(counts: np.ndarray, ds: Dataset) -> Votes:
    """Votes as read_votes returns them, without a file."""
    return Votes(counts, ds.usage, "votes.csv", "0" * 64)


def faces_dataset(sample_csv, usage) -> Dataset:
    ds = load_fer2013(sample_csv)
    n = len(usage)
    return Dataset(ds.faces[:n], ds.labels[:n], np.asarray(usage, ds.usage.dtype), "faces.csv", ds.sha256)


# --- the rules -------------------------------------------------------------------------------------

def test_labels_are_fer2013s_seven_then_contempt():
    assert LABELS[:7] == FER2013_LABELS and LABELS[7] == "Contempt" and len(LABELS) == 8
    assert FERPLUS_SPLITS == {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}


def test_majority_rule_ties_unknown_and_not_a_face():
    c = votes({H: 6, N: 4},            # a clear winner
              {H: 4, S: 4, N: 2},      # a tie for the most votes
              {UNK: 5, H: 3, N: 2},    # unknown wins
              {NF: 10},                # not a face
              {H: 4, UNK: 4, N: 2},    # unknown ties the top emotion
              {C: 5, N: 3, UNK: 2},    # Contempt, the eighth class
              {A: 3, NF: 3, N: 2, F: 2})  # NF ties the top emotion: not a face
    assert majority_labels(c).tolist() == [H, -1, -1, -1, -1, C, -1]
    assert not_face(c).tolist() == [False, False, False, True, False, False, True]
    assert clear(c).tolist() == [True, True, False, False, False, True, False]


def test_soft_targets_are_the_vote_distribution_over_8_emotions():
    t = soft_targets(votes({H: 6, N: 2, UNK: 2}, {C: 1, S: 1, NF: 8}))
    assert t.shape == (2, 8) and np.allclose(t.sum(axis=1), 1)
    assert np.allclose(t[0, [H, N]], [0.75, 0.25]) and np.allclose(t[1, [C, S]], [0.5, 0.5])


def test_pld_draws_follow_the_votes_and_repeat_per_seed_and_epoch():
    c = np.repeat(votes({H: 7, S: 3}, {C: 10}), 2000, axis=0)
    a, b = draw_labels(c, seed=0, epoch=3), draw_labels(c, seed=0, epoch=3)
    assert (a == b).all() and not (a == draw_labels(c, 0, 4)).all()  # a resumed run redraws the same labels
    assert set(a[:2000]) == {H, S} and abs((a[:2000] == H).mean() - 0.7) < 0.05
    assert (a[2000:] == C).all()


def test_relabel_never_keeps_a_face_that_is_not_a_face(sample_csv):
    c = votes({H: 6, N: 4}, {NF: 10}, {H: 4, S: 4}, {UNK: 6, H: 4}, {C: 6, N: 4}, {A: 2, NF: 2})
    ds = faces_dataset(sample_csv, ["Training"] * len(c))
    v = votes_of(c, ds)
    for scheme in SCHEMES:
        fp = relabel(ds, v, scheme)
        assert 1 not in fp.rows and 5 not in fp.rows and fp.dropped["not a face"] == 2
        assert (fp.ds.faces == ds.faces[fp.rows]).all()
    assert relabel(ds, v, "majority").rows.tolist() == [0, 4]          # ties and unknown-won faces out
    soft = relabel(ds, v, "soft")
    assert soft.rows.tolist() == [0, 2, 4] and soft.ds.labels.tolist() == [H, H, C]  # the tie kept, stratified by its first top
    assert soft.majority.tolist() == [H, -1, C]
    assert soft.targets(np.arange(3), "soft").shape == (3, 8)


# --- the votes file -----------------------------------------------------------------------------------

def test_votes_file_columns_come_in_our_order(sample_csv, tmp_path):
    c = votes({H: 7, C: 3}, {A: 5, N: 4, UNK: 1}, {NF: 10})
    ds = faces_dataset(sample_csv, ["Training", "PublicTest", "PrivateTest"])
    path = tmp_path / "v.csv"
    path.write_text(votes_csv(c, ["Training", "FER2013Valid", "PrivateTest"]))  # either split name
    v = read_votes(path, ds)
    assert (v.counts == c).all() and v.usage.tolist() == ["Training", "PublicTest", "PrivateTest"]


@pytest.mark.parametrize("damage, words", [
    ("missing", "no such FER+ votes file"),
    ("header", "v.csv:1: expected the FER+ header"),
    ("short", "2 vote rows for 3 faces"),
    ("usage", "v.csv:3: Usage Training but face 2 of faces.csv is PublicTest"),
    ("vote", "v.csv:2: votes must be whole numbers"),
])
def test_bad_votes_file_is_one_clear_error(sample_csv, tmp_path, damage, words):
    ds = faces_dataset(sample_csv, ["Training", "PublicTest", "PublicTest"])
    text = votes_csv(votes({H: 10}, {S: 10}, {N: 10}), ["Training", "PublicTest", "PublicTest"])
    lines = text.splitlines()
    if damage == "header":
        lines[0] = lines[0].replace("neutral,happiness", "happiness,neutral")
    elif damage == "short":
        lines = lines[:-1]
    elif damage == "usage":
        lines[2] = lines[2].replace("PublicTest", "Training", 1)
    elif damage == "vote":
        lines[1] = lines[1].replace(",10,", ",ten,", 1)
    path = tmp_path / "v.csv"
    if damage != "missing":
        path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerplusError, match=re.escape(words)):
        read_votes(path, ds)


def test_a_full_file_with_private_test_is_scored_on_it(sample_csv, tmp_path):
    """A user's full FER2013 file (Training, PublicTest, PrivateTest) and full fer2013new.csv: the official
    split reports on PrivateTest (FER+'s FER2013Test), with only majority-labelled faces there."""
    usage = ["Training"] * 300 + ["PublicTest"] * 60 + ["PrivateTest"] * 60
    ds = faces_dataset(sample_csv, usage)
    rng = np.random.default_rng(0)
    c = np.zeros((len(usage), 10), np.int32)
    c[np.arange(len(usage)), rng.integers(0, 8, len(usage))] = 6
    c[np.arange(len(usage)), rng.integers(0, 8, len(usage))] += 4   # sometimes 10 votes on one, else 6 + 4
    c[::10] = votes({H: 5, S: 5})[0]                                # ties
    c[5::50] = votes({NF: 10})[0]                                   # not faces
    path = tmp_path / "fer2013new.csv"
    path.write_text(votes_csv(c, [FERPLUS_SPLITS[u] for u in usage]))
    fp = relabel(ds, read_votes(path, ds), "soft")
    split = run_split(ds, fp, "official", 0, 0.1)
    assert split.test_name == "PrivateTest" and FERPLUS_SPLITS[split.test_name] == "FER2013Test"
    assert (fp.ds.usage[split.test] == "PrivateTest").all() and (fp.ds.usage[split.val] == "PublicTest").all()
    assert (fp.majority[split.test] >= 0).all() and (fp.majority[split.val] >= 0).all()
    assert (fp.majority[split.train] < 0).any()  # soft trains on the ties too
    assert not set(fp.rows[np.concatenate([split.train, split.val, split.test])]) & set(range(5, 420, 50))
    whole = make_split(ds, "official", 0, 0.1)  # FER2013's own split, narrowed
    assert all(set(fp.rows[getattr(split, s)]) <= set(getattr(whole, s)) for s in ("train", "val", "test"))


def test_a_ferplus_run_holds_out_the_faces_a_fer2013_run_holds_out(sample_ferplus, kind="random80"):
    """FER+ carves FER2013's split, then narrows it: a FER+ face is on the side the same face is on in a
    FER2013 run with that seed, so warm-starting one from the other (train --init-from) cannot leak."""
    ds = load_fer2013(sample_ferplus / "sample.csv")
    fp = relabel(ds, read_votes(sample_ferplus / "ferplus_labels.csv", ds), "soft")
    whole, narrowed = make_split(ds, kind, 3, 0.1), run_split(ds, fp, kind, 3, 0.1)
    for side in ("train", "val", "test"):
        rows = fp.rows[getattr(narrowed, side)]
        assert set(rows) <= set(getattr(whole, side)), side
    assert set(fp.rows[narrowed.train]) == set(whole.train) & set(fp.rows)   # soft trains on every kept face
    assert set(fp.rows[narrowed.val]) == set(whole.val) & set(fp.rows[fp.majority >= 0])  # scored on majority
    assert len(narrowed.val) and len(narrowed.test)


def test_real_votes_for_the_sample_are_line_aligned(sample_ferplus):
    ds = load_fer2013(sample_ferplus / "sample.csv")
    v = read_votes(sample_ferplus / "ferplus_labels.csv", ds)
    assert len(v.counts) == 420 and (v.counts.sum(axis=1) >= 9).all()
    assert (majority_labels(v.counts) == ds.labels).mean() > 0.5  # FER+ mostly agrees with FER2013 here


# --- the command line -----------------------------------------------------------------------------------

def _one_error(r, code, words):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, r.stderr[-2000:]
    assert lines and lines[-1].startswith("error: ") and words in lines[-1], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("extra, code, words", [
    (("--label-scheme", "soft"), 2, "--label-scheme soft needs --labels ferplus"),
    (("--ferplus", "{votes}"), 2, "--ferplus needs --labels ferplus"),
    (("--labels", "ferplus", "--ferplus", "missing.csv"), 3, "--ferplus missing.csv: no such file"),
    (("--labels", "ferplus"), 2, "--labels ferplus needs --ferplus PATH"),  # no votes file beside the copy
])
def test_cli_flag_errors_are_one_line(sample_csv, sample_ferplus, tmp_path, extra, code, words):
    extra = [a.format(votes=sample_ferplus / "ferplus_labels.csv") for a in extra]
    lone = tmp_path / "alone" / "sample.csv"  # a folder with no votes file, beside it or in ../ferplus
    lone.parent.mkdir()
    lone.write_bytes(sample_csv.read_bytes())
    _one_error(run_train("--data", lone, "--out", tmp_path / "o", *extra), code, words)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_misaligned_votes_file_is_one_error_line_exit_3(sample_ferplus, tmp_path):
    lines = (sample_ferplus / "ferplus_labels.csv").read_text().splitlines()
    bad = tmp_path / "votes.csv"
    bad.write_text("\n".join(lines[:100] + lines[101:]) + "\n")  # one row lost: every later row is off by one
    r = run_train("--data", sample_ferplus / "sample.csv", "--out", tmp_path / "o", "--labels", "ferplus",
             "--ferplus", bad, "--split", "random80", "--epochs", "1")
    _one_error(r, 3, f"{bad}: 419 vote rows for 420 faces")
    assert not (tmp_path / "o" / "model.keras").exists()


# --- training with each scheme -----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_trains_and_writes_8_label_metadata(sample_ferplus, tmp_path, scheme):
    import keras

    from device.metadata import read_metadata
    from train.config import ConfigError, resolve
    from train.fit import train_run
    from train.report import read_history

    data, votes_path = sample_ferplus / "sample.csv", tmp_path / "votes.csv"
    text = (sample_ferplus / "ferplus_labels.csv").read_text().splitlines()
    for i in range(1, 11):  # ten faces FER+ calls not a face: they must appear nowhere
        cells = text[i].split(",")
        text[i] = ",".join(cells[:2] + ["0"] * 9 + ["10"])
    votes_path.write_text("\n".join(text) + "\n")
    epochs = 2 if scheme == "pld" else 1  # pld: one fit call per epoch, with labels drawn anew
    cfg = dict(data=str(data), out=str(tmp_path / "run"), split="random80", batch_size=32, labels="ferplus",
               ferplus=str(votes_path), label_scheme=scheme)
    out = train_run(resolve("paper" if scheme == "pld" else "default", epochs=epochs, **cfg))

    meta = read_metadata(out / "model.keras")
    assert meta["labels"] == list(LABELS) and meta["data"]["labels"] == "ferplus"
    assert meta["data"]["label_scheme"] == scheme and meta["data"]["left_out"]["not a face"] == 10
    model = keras.models.load_model(out / "model.keras")
    assert model.output.shape[1:] == (8,)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == list(LABELS) and metrics["label_scheme"] == scheme and "Contempt" in metrics["per_class"]
    ds = load_fer2013(data)
    v = read_votes(votes_path, ds)
    fp = relabel(ds, v, scheme)
    majority_faces = int(((majority_labels(v.counts) >= 0) & ~not_face(v.counts)).sum())
    assert metrics["n_train"] == len(run_split(ds, fp, "random80", 0, 0.1).train)  # the scheme's training faces
    assert metrics["n_val"] + metrics["n_test"] <= majority_faces                     # scored on majority labels
    assert [h["epoch"] for h in read_history(out / "history.csv")] == list(range(1, epochs + 1))
    saved = json.loads((out / "config.json").read_text())
    assert (saved["labels"], saved["ferplus"], saved["label_scheme"]) == ("ferplus", str(votes_path), scheme)
    other = "soft" if scheme != "soft" else "majority"
    with pytest.raises(ConfigError, match="label_scheme"):
        train_run(resolve(epochs=epochs + 1, resume=True, **{**cfg, "label_scheme": other}))


@pytest.mark.slow
def test_cli_finds_the_votes_beside_the_data(sample_ferplus, tmp_path):
    out = tmp_path / "cli"
    r = run_train("--data", sample_ferplus / "sample.csv", "--out", out, "--labels", "ferplus", "--label-scheme", "soft",
             "--split", "random80", "--epochs", "1", "--limit", "80", "--model", "residual_cnn", "--preset", "paper")
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["ferplus"] == str(sample_ferplus / "ferplus_labels.csv") and cfg["class_weights"] == "paper"
    assert json.loads((out / "metadata.json").read_text())["labels"] == list(LABELS)
