"""One run's section of docs/RESULTS.md: its facts, its figures per model, per-class recall and
the commands its stages recorded."""
from __future__ import annotations

from pathlib import Path

from device.contract import LABELS
from train.registry import MODELS, normalize_weights

from .collect import Run, epochs_planned, g, latency, members, recorded, scores, split_name
from .text import (NOT_RUN, RANDOM_INIT, duration, loop_fps, machine_text, ms, pct, pp, recipe_text, recovered_model, size,
                   split_text, table, title)

STAGES = (("config", "training", "config.json"), ("report", "conversion", "report.json"),
          ("bench", "bench", "bench.json"))


def facts(run: Run) -> list[str]:
    cfg, m, data = run.cfg, run.metrics, g(run.metadata, "data", default={})
    out = [f"- Reported on: {split_text(run, long=True)}"]
    if cfg or data:
        sha = data.get("sha256")
        out.append(f"- Data: `{cfg.get('data') or data.get('path', '?')}`" + (f" (sha256 `{sha[:16]}…`)" if sha else "")
                   + (f"; {m.get('n_train')} train / {m.get('n_val', '?')} val / {m.get('n_test', '?')} test faces"
                      if m.get("n_train") else "") + (f"; subsampled with --limit {cfg['limit']}" if cfg.get("limit") else ""))
    rec = recovered_model(cfg)  # convert recover: a converted file's weights, not a training run
    if rec:
        return out + [f"- Recovered by `python -m convert recover` from `{rec.get('model')}` (sha256 "
                      f"`{str(rec.get('sha256'))[:16]}…`): no training recipe, epochs or training time of its own",
                      f"- Dates: recovered {run.mtime('metrics.json')}, converted {g(run.report, 'date', default=NOT_RUN)}",
                      ""]
    out.append(f"- Epochs: {m.get('epochs_run', '?')} run of {epochs_planned(run) or '?'} planned"
               + (f" ({cfg['epochs']} frozen + {cfg['fine_tune_epochs']} fine-tuning conv5)"
                  if cfg.get("fine_tune_epochs") else "")
               + (f"; best validation accuracy {pct(m.get('best_val_accuracy'))} at epoch {m['best_epoch']}"
                  if m.get("best_epoch") is not None else ""))
    out += [recipe_text(cfg)] if cfg else []
    if getattr(MODELS.get(run.model), "backbone", False):
        w = normalize_weights(cfg.get("weights"))
        label = "not recorded (no config.json)" if not run.config else RANDOM_INIT if w is None else \
            "ImageNet (Keras download)" if w == "imagenet" else f"local weights file `{Path(w).name}`"
        out.append(f"- Backbone weights: **{label}**" if run.random_init else f"- Backbone weights: {label}")
    machine = recorded(run.config).get("machine")
    out.append(f"- Training time: {duration(m.get('train_time_s'))} on {machine_text(machine or g(run.report, 'machine'))}"
               + ("" if machine else " (the conversion's machine; training's is not recorded)") + "; metrics.json "
               "`train_time_s` counts training calls that ran to the end, not time lost to an interruption")
    out += [f"- Parameters: {run.metadata['params']:,}"] if g(run.metadata, "params") else []
    benched = (run.mtime("bench.json") or recorded(run.bench).get("date")) if run.bench else NOT_RUN
    out.append(f"- Dates: trained {run.mtime('metrics.json')}, converted {g(run.report, 'date', default=NOT_RUN)}, "
               f"benched {benched}")
    git = g(run.repro, "git", default={})
    out += [f"- Code: commit `{git['commit'][:12]}`" + (" with uncommitted changes" if git.get("dirty") else "")] \
        if git.get("commit") else []
    return out + [""]


def commands(run: Run, stages=STAGES) -> list[str]:
    """The commands the stages recorded, or why there is none."""
    lines = [recorded(getattr(run, attr)).get("command") or (
        f"# {stage}: not run (no {fname})" if getattr(run, attr) is None else
        f"# {stage}: command not recorded (no provenance in {fname})") for attr, stage, fname in stages]
    return ["```bash", *lines, "```", ""]


def figures(run: Run, k: dict, f32: dict, i8: dict) -> list[str]:
    """The Keras / float32 / int8 table, the int8 drop and what the bench measured."""
    keras_bytes = k.get("size_bytes") or g(run.archive, "model_keras_bytes") or (
        (run.dir / "model.keras").stat().st_size if not run.archive and (run.dir / "model.keras").is_file() else None)
    out = table(["", "Keras", "float32 TFLite", "int8 TFLite"], [
        ["accuracy"] + [pct(x.get("accuracy"), 2) for x in (k, f32, i8)],
        ["macro-F1"] + [pct(x.get("macro_f1"), 2) for x in (k, f32, i8)],
        ["file size", size(keras_bytes), size(f32.get("size_bytes")), size(i8.get("size_bytes"))],
        ["latency, 1 thread (report.json)", "—"] + [ms(latency(run, n, "report")) for n in ("float32", "int8")],
        ["latency, 1 thread (bench.json)", "—"] + [ms(latency(run, n, "bench")) for n in ("float32", "int8")],
        ["loop fps on the clip (bench.json)", "—", loop_fps(run, "float32"), loop_fps(run, "int8")]]) + [""]
    if not run.report:
        out += ["Conversion: not run (no report.json): float32/int8 figures and sizes are missing.", ""]
    if i8:
        graph = i8.get("graph")
        out += [f"int8 against float32: accuracy drop {pp(g(i8, 'drop_vs_float32', 'accuracy_pp'))}, macro-F1 drop "
                f"{pp(g(i8, 'drop_vs_float32', 'macro_f1_pp'))}, top-1 agreement "
                f"{pct(g(i8, 'vs_float32', 'top1_agreement'))}" + ("; integer end to end." if g(graph, "int8_end_to_end")
                                                                  else "; some ops still run in float (see report.md)."
                                                                  if graph else "."), ""]
    if run.bench:
        loop, clip = g(run.bench, "models", "int8", "loop", "1", default={}), run.bench.get("video")
        out += [f"Bench: {g(run.bench, 'faces', 'n', default='?')} faces of eval_faces.npz" + (
            f"; loop on `{Path(str(clip)).name}`, {loop.get('frames', '?')} frames, {loop.get('faces', '?')} faces, "
            f"{g(loop, 'latency_ms', 'per_frame', default=float('nan')):.1f} ms per frame (int8)" if clip and loop
            else "; no clip given") + ".", ""]
    else:
        out += ["Bench: not run (no bench.json): latency is from report.json only, loop fps is missing.", ""]
    return out


def per_class(run: Run, k: dict, f32: dict, i8: dict) -> list[str]:
    names = list(k.get("per_class") or {}) or list(LABELS)
    rows = [["support"] + [str(g(k, "per_class", c, "support", default="?")) for c in names]]
    rows += [[label] + [pct(g(x, "per_class", c, "recall")) if x.get("per_class") else NOT_RUN for c in names]
             for label, x in (("Keras", k), ("float32", f32), ("int8", i8))]
    drops = g(i8, "drop_vs_float32", "per_class_recall_pp")
    rows += [["int8 drop vs float32"] + [pp(drops.get(c)) for c in names]] if drops else []
    return [f"Per-class accuracy (recall) on {split_name(run)}:", ""] + table(["", *names], rows) + [""]


def run_section(run: Run) -> list[str]:
    out = [f"## {title(run)}: `{run.name}`", ""] + [f"> warning: {p}" for p in run.problems]
    out += ([""] if run.problems else []) + facts(run)
    k, f32, i8 = scores(run, "keras"), scores(run, "float32"), scores(run, "int8")
    out += figures(run, k, f32, i8) + per_class(run, k, f32, i8)
    recovered = next((recorded(d)["recovered_from"] for d in (run.config, run.report, run.bench)
                      if recorded(d).get("recovered_from")), None)
    out += [f"Commands (recovered from {recovered}; run from the repository root):" if recovered else
            "Commands as recorded (`provenance.command` in config.json, report.json and bench.json):", ""]
    out += commands(run)
    made_by = recorded(run.repro).get("command")
    out += [f"or all three stages with `{made_by}`.", ""] if made_by else []
    if run.flip:
        out += [f"The same trained model converted with `--flip-tta` (each face classified with its mirror image, "
                f"probabilities averaged inside the .tflite file; row `{run.flip.name}` of the summary):", ""]
        out += commands(run.flip, STAGES[1:])
    for e in run.ensembles:
        out += [f"Ensemble: this run's model averaged with {', '.join(f'`{m}`' for m in members(e))}"
                + (" (and every model with its mirror image)" if g(e.report, "run", "flip_tta") else "")
                + f" inside one .tflite file (`convert --member`; row `{e.name}` of the summary and the ablation):", ""]
        out += figures(e, *(scores(e, n) for n in ("keras", "float32", "int8"))) + commands(e, STAGES[1:])
    return out
