"""python -m convert ship (convert/ship.py): ships one model pair (plain, flip TTA or an ensemble), documents it,
refuses what it should, on small fake run folders (tests/fake_runs.py): no Keras, seconds."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fake_runs import (  # noqa: E402  (tests/fake_runs.py: the fake run folders)
    T0, write, make_run, ship)
from fake_runs import work  # noqa: F401  (the fixture, used by name)


def shipped_run(work: Path, flip: bool = False, ensemble: tuple = ()) -> Path:
    run = make_run(work / "runs", "vanilla_cnn-official", split="official", preset="baseline", epochs=40, acc=0.6,
                   flip=flip, ensemble=ensemble)
    src = run / "ensemble-flip-tta" if ensemble else run / "flip-tta" if flip else run
    (src / "metadata.json").write_bytes((run / "metadata.json").read_bytes())
    for f, body in (("model_float32.tflite", b"f" * 5000), ("model_int8.tflite", b"i" * 1200), ("report.md", b"r")):
        (src / f).write_bytes(body)
    for f in ("model_float32.tflite", "model_int8.tflite", "report.json", "report.md", "metadata.json"):
        os.utime(src / f, (T0 + 60, T0 + 60))
    return run


def test_make_default_model_ships_one_pair_and_documents_it(work):
    run = shipped_run(work)
    dest = work / "default"
    dest.mkdir()
    (dest / "model_float32.tflite").write_bytes(b"stale float model of another run")
    p = ship(str(run), "--dest", str(dest), "--max-bytes", "2000")
    assert p.returncode == 0 and "already converted" in p.stderr, p.stderr
    assert sorted(f.name for f in dest.iterdir()) == ["README.md", "metadata.json", "model_int8.tflite", "report.md"]
    assert (dest / "model_int8.tflite").read_bytes() == b"i" * 1200
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "int8 model on PublicTest (n=3589, official split): **60.25%**" in readme
    assert "11f7da2a6a3c26351b9d6638fddb63074092af21f4f54a4fdea4f300536e9d89" in readme
    assert "python -m train --data ../shared/data/fer2013/sample.csv --model vanilla_cnn --preset baseline" in readme
    assert f"python -m convert ship {run} --dest {dest} --max-bytes 2000   #" in readme
    assert readme.startswith("# The default model\n") and "when no `--model` is given (7 labels: Angry," in readme

    named = work / "ferplus"  # another shipped model: device/run.py --model ferplus
    p = ship(str(run), "--dest", str(named), "--max-bytes", "2000")
    assert p.returncode == 0, p.stderr
    readme = (named / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# The `ferplus` model\n") and "`device/run.py --model ferplus` uses" in readme
    assert f"python -m convert ship {run} --dest {named} --max-bytes 2000   #" in readme

    p = ship(str(run), "--dest", str(dest), "--max-bytes", "1000")
    assert p.returncode == 5 and "over the 1000-byte limit" in p.stderr
    p = ship(str(work / "nope"), "--dest", str(dest))
    assert p.returncode == 3 and "run folder not found" in p.stderr


def test_make_default_model_ships_the_flip_tta_folder(work):
    run = shipped_run(work, flip=True)
    (run / "model_int8.tflite").write_bytes(b"plain")
    dest = work / "default"
    p = ship(str(run), "--dest", str(dest), "--flip-tta")
    assert p.returncode == 0, p.stderr
    assert (dest / "model_int8.tflite").read_bytes() == b"i" * 1200  # the flip-tta file, not the plain one
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "**61.05%**" in readme and "converted with `--flip-tta`" in readme
    assert f"python -m convert ship {run} --flip-tta" in readme
    p = ship(str(run), "--dest", str(dest), "--max-bytes", "lots")
    assert p.returncode == 2 and "--max-bytes" in p.stderr


def test_make_default_model_ships_an_ensemble(work):
    """--member: the RUN/ensemble-flip-tta file of exactly those members, and a README that says how to remake it."""
    member = make_run(work / "runs", "vanilla_cnn-official-init1", split="official", preset="baseline", epochs=40,
                      acc=0.59)
    run = shipped_run(work, flip=True, ensemble=("vanilla_cnn-official-init1",))
    report = run / "ensemble-flip-tta" / "report.json"
    doc = json.loads(report.read_text())
    doc["run"]["members"] = [str(member)]  # as convert records a member given by its full path
    write(report, doc)
    os.utime(report, (T0 + 60, T0 + 60))
    dest = work / "default"
    p = ship(str(run), "--flip-tta", "--member", str(member), "--dest", str(dest),
               "--max-bytes", "4000000")
    assert p.returncode == 0 and "already converted" in p.stderr, p.stderr
    assert (dest / "model_int8.tflite").read_bytes() == b"i" * 1200
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "**62.25%**" in readme and "an ensemble: the file also holds the model of" in readme
    assert f"python -m convert ship {run} --flip-tta --member {member} --dest {dest}   #" in readme
    assert "--out runs/vanilla_cnn-official-init1" in readme  # the member's own training command
    p = ship(str(run), "--flip-tta", "--member", str(work / "nope"), "--dest", str(dest))
    assert p.returncode == 3 and "run folder not found" in p.stderr


@pytest.mark.parametrize("how", ["FERLITE_RUNS", "--runs"])
def test_a_run_under_the_runs_root_is_named_as_records_name_it(work, how):
    """With the runs root given (FERLITE_RUNS or --runs), RUN and its members are runs/NAME wherever the command
    runs, a report that names its members so (a new record) is the conversion asked for, and the README (copied
    onto every Pi) holds no path of this machine."""
    member = make_run(work / "runs", "vanilla_cnn-official-init1", split="official", preset="baseline", epochs=40,
                      acc=0.59)
    shipped_run(work, flip=True, ensemble=(member.name,))  # its report names the member runs/NAME
    dest = work / "default"
    given = {"env": {"FERLITE_RUNS": str(work / "runs")}} if how == "FERLITE_RUNS" else {}
    p = ship("runs/vanilla_cnn-official", "--flip-tta", "--member", "runs/vanilla_cnn-official-init1", "--dest", dest,
             *([] if given else ["--runs", work / "runs"]), **given)
    assert p.returncode == 0 and "already converted" in p.stderr, p.stderr
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "From run folder: `runs/vanilla_cnn-official`" in readme
    assert f"python -m convert ship runs/vanilla_cnn-official --flip-tta --member runs/vanilla_cnn-official-init1" \
           f" --dest {dest}   #" in readme
    assert str(work / "runs") not in readme


def test_remake_commands_train_what_a_run_starts_from_or_learns_from_first(work):
    """A distilled student started from another run: the README's remake lines train that run first, once."""
    base = make_run(work / "runs", "vanilla_cnn-base", split="official", preset="baseline", epochs=40, acc=0.58)
    member = make_run(work / "runs", "vanilla_cnn-official-init1", split="official", preset="baseline", epochs=40,
                      acc=0.59)
    run = shipped_run(work, flip=True, ensemble=("vanilla_cnn-official-init1",))
    cfg = json.loads((run / "config.json").read_text())
    write(run / "config.json", {**cfg, "init_from": str(base), "teachers": [str(base), str(member)]})
    report = run / "ensemble-flip-tta" / "report.json"
    doc = json.loads(report.read_text())
    doc["run"]["members"] = [str(member)]
    write(report, doc)
    os.utime(report, (T0 + 60, T0 + 60))
    p = ship(str(run), "--flip-tta", "--member", str(member), "--dest", str(work / "default"))
    assert p.returncode == 0, p.stderr
    readme = (work / "default" / "README.md").read_text(encoding="utf-8")
    outs = [line.split("--out ")[1] for line in readme.splitlines() if line.startswith("python -m train")]
    assert outs == ["runs/vanilla_cnn-base", "runs/vanilla_cnn-official-init1", "runs/vanilla_cnn-official"]


def test_remake_commands_name_a_converted_teacher_by_its_sha256(work):
    """A student of the shipped default (train --teacher device/models/default): that folder is replaced when the
    student ships, so the remake lines say what it was (its sha256, as the run recorded it) and where git has it."""
    run = shipped_run(work)
    teacher = work / "old-default"
    teacher.mkdir()
    (teacher / "model_int8.tflite").write_bytes(b"int8 model")
    cfg = json.loads((run / "config.json").read_text())
    write(run / "config.json", {**cfg, "teachers": [str(teacher)],
                                "teacher_files": [{"path": str(teacher / "model_int8.tflite"), "sha256": "ab" * 32}]})
    p = ship(str(run), "--dest", str(work / "default"))
    assert p.returncode == 0, p.stderr
    lines = (work / "default" / "README.md").read_text(encoding="utf-8").splitlines()
    note = next(i for i, line in enumerate(lines) if "a converted model, not a training run" in line)
    assert "(sha256 abababababababab...)" in lines[note] and "git log -- " in lines[note]
    assert lines[note + 1].startswith("python -m train")  # then the student's own command


def test_make_default_model_readme_from_archived_records(work):
    """The shipped README can be rewritten from docs/runs alone (its run folder need not be on this machine)."""
    records = work / "records"
    make_run(records, "vanilla_cnn-official", split="official", preset="baseline", epochs=40, acc=0.6, flip=True,
             archived=True)
    dest = work / "default"
    p = ship(str(records / "vanilla_cnn-official"), "--flip-tta", "--readme-only",
               "--dest", str(dest))
    assert p.returncode == 0, p.stderr
    assert [f.name for f in dest.iterdir()] == ["README.md"]
    assert "From run folder: `runs/vanilla_cnn-official`" in (dest / "README.md").read_text(encoding="utf-8")


def test_remake_commands_show_a_resume_that_changed_options(work):
    """A run cut short by ``--resume --epochs N`` is remade by both commands, so the README says how it was made."""
    run = shipped_run(work)
    cfg = json.loads((run / "config.json").read_text())
    start = {"command": "python -m train --epochs 100 --out r", "argv": ["--epochs", "100", "--out", "r"]}
    cut = {"command": "python -m train --epochs 80 --out r --resume", "argv": ["--epochs", "80", "--out", "r", "--resume"]}
    write(run / "config.json", {**cfg, "provenance": {**cfg.get("provenance", {}), **start, "resumed": [cut]}})
    p = ship(str(run), "--dest", str(work / "default"))
    assert p.returncode == 0, p.stderr
    lines = (work / "default" / "README.md").read_text(encoding="utf-8").splitlines()
    i = lines.index(start["command"])
    assert lines[i + 1] == f"# resumed with changed options (the run as made): {cut['command']}"


def test_a_pinned_copy_of_an_old_default_is_found_in_git():
    """A teacher copied out of the tree (a multi-session run's pinned default) is named by the commit that shipped it."""
    import hashlib
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    from convert.ship import committed_model
    path = "device/models/default/model_int8.tflite"
    commit = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h", "--", path],
                            capture_output=True, text=True).stdout.strip()
    if not commit:
        import pytest
        pytest.skip("no git history here")
    blob = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{path}"], capture_output=True).stdout
    found = committed_model(hashlib.sha256(blob).hexdigest())
    assert found is not None and found[1] == path
    shown = subprocess.run(["git", "-C", str(root), "show", f"{found[0]}:{path}"], capture_output=True).stdout
    assert shown == blob
    assert committed_model("ab" * 32) is None and committed_model(None) is None
