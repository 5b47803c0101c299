"""The FER+ section of docs/RESULTS.md: runs trained on FER+ votes (train/ferplus.py), one row per
scheme, beside the published figures; and the cross-checks of python -m convert crosscheck, each
model scored against FER2013's labels and FER+'s majority labels on the same faces."""
from __future__ import annotations

from pathlib import Path

from train.ferplus import SCHEMES

from .collect import Run, g, recorded, scores, shown_path, split_kind
from .text import NOT_RUN, PAPER, epochs_text, machine_text, pct, pp, split_text, table, title

# Published, not measured here: what to read our rows beside.
PUBLISHED = ("Published (not measured here): Barsoum et al. (ICMI 2016) report about 84–85% majority-vote accuracy "
             "on FER+'s test split (FER2013Test) for a VGG13 trained from scratch, with probabilistic label drawing "
             "and cross-entropy over the vote distribution ahead of plain majority training; later work with "
             "ImageNet- or face-pretrained ResNets reports 88–90%. Our copy has no FER2013Test, so our rows are on "
             "FER2013Valid (PublicTest) unless a run's data had PrivateTest rows.")
CHECKS = (("fer2013_7", "FER2013 labels (7)"), ("ferplus_7", "FER+ majority (7)"), ("ferplus_8", "FER+ majority (8)"))


def contempt_recall(run: Run) -> str:
    """int8's recall of Contempt (Keras's where there is no conversion), with its support."""
    m = scores(run, "int8") or scores(run, "keras")
    c = g(m, "per_class", "Contempt")
    return f"{pct(c.get('recall'))} (n={c.get('support', '?')})" if c else NOT_RUN


def scheme_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for scheme in SCHEMES:
        mine = [r for r in runs if r.cfg.get("label_scheme") == scheme or
                g(r.metadata, "data", "label_scheme") == scheme]
        rows += [[f"`{scheme}`"] + [NOT_RUN] * 10] if not mine else [
            scheme_row(scheme, shown, name, r) for r in mine
            for shown, name in ((r, title(r)), (r.flip, f"{title(r)} + flip TTA")) if shown]
    return rows


def scheme_row(scheme: str, shown: Run, name: str, run: Run) -> list[str]:
    """One FER+ table row: ``shown`` is the run or its flip-TTA conversion (which has no epochs of its own)."""
    i8 = scores(shown, "int8")
    return [f"`{scheme}`", name, f"`{shown.name}`", split_text(shown), epochs_text(run),
            pct(scores(shown, "keras").get("accuracy")), pct(scores(shown, "float32").get("accuracy")),
            pct(i8.get("accuracy")), pct(i8.get("macro_f1")), pp(g(i8, "drop_vs_float32", "accuracy_pp")),
            contempt_recall(shown)]


def cell(check: dict, key: str) -> str:
    s = g(check, "scores", key)
    if s is None and key == "ferplus_8" and len(check.get("model_labels") or []) < 8:
        return "— (no Contempt output)"
    return f"{pct(s.get('accuracy'), 2)} (n={s.get('n')})" if s else NOT_RUN


def check_rows(checks) -> list[list[str]]:
    rows = []
    for path, c in checks:
        prov = recorded(c)
        rows.append([f"`{c.get('model', '?')}`", str(len(c.get("model_labels") or [])),
                     f"{c.get('usage', '?')} ({c.get('ferplus_split', '?')}), n={g(c, 'faces', 'scored', default='?')}"]
                    + [cell(c, key) for key, _ in CHECKS]
                    + [pct(c.get("label_agreement_fer2013_vs_ferplus_7")),
                       f"{machine_text(prov.get('machine'))}, {prov.get('date', '?')}"])
    return rows


def ferplus_section(runs: list[Run], checks) -> list[str]:
    mine = [r for r in runs if r.label_set == "ferplus"]
    lines = ["## FER+ labels", "",
             "Models trained on FER+'s ten annotators' votes (`python -m train --labels ferplus --label-scheme "
             "majority|soft|pld`), 8 classes: FER2013's seven, then Contempt. Every scheme is validated and scored "
             "on FER+ majority labels (faces FER+ marks as not a face, ties and faces where `unknown` has the most "
             "votes left out), so the rows compare with each other, not with the FER2013-label rows above.", ""]
    lines += table(["scheme", "model", "run", "reported on", "epochs run / planned", "Keras acc", "float32 acc",
                    "int8 acc", "int8 macro-F1", "int8 drop", "Contempt recall"], scheme_rows(mine)) + [""]
    lines += [PUBLISHED, ""]
    lines += ["### Cross-checks: one model, both label sources", "",
              "`python -m convert crosscheck` scores a model on the same faces against FER2013's own labels and "
              "against FER+ majority labels, on the 7 emotions both share (argmax over the model's first 7 outputs: "
              "a FER+ model's Contempt output is left out; faces whose FER+ majority is Contempt are left out of the "
              "FER+ (7) column), and an 8-label model also on all 8. \"Labels agree\": how often FER2013's label is "
              "the FER+ majority on the FER+ (7) faces.", ""]
    rows = check_rows(checks)
    lines += table(["model", "labels", "faces", *(name for _, name in CHECKS), "labels agree", "machine, date"],
                   rows or [[NOT_RUN] * 8]) + [""]
    commands = [recorded(c).get("command") for _, c in checks if recorded(c).get("command")]
    if commands:
        lines += ["Commands as recorded (`provenance.command`, from "
                  + ", ".join(f"`{shown_path(Path(p))}`" for p, _ in checks) + "):", "", "```bash", *commands,
                  "```", ""]
    return lines


def paper_recipe_note(runs: list[Run]) -> list[str]:
    """A bullet for "Beside the paper's Table 2": the paper's recipe on FER2013's labels and on FER+ majority
    labels, same model, split and epochs, beside the paper's figure. Numbers, then what they show; no claim
    about what the authors did."""
    def paper_runs(labels):
        return {(r.model, split_kind(r), r.metrics.get("epochs_run")): r for r in runs
                if r.label_set == labels and r.cfg.get("preset") == "paper" and not r.random_init}
    fer, plus = paper_runs("fer2013"), paper_runs("ferplus")
    pairs = [(fer[k], plus[k]) for k in sorted(plus, key=str) if k in fer and k[0] in PAPER]
    if not pairs:
        return []
    parts, closer = [], []
    for a, b in pairs:
        name, _, paper_val = PAPER[a.model]
        acc_a, acc_b = scores(a, "keras").get("accuracy"), scores(b, "keras").get("accuracy")
        if acc_a is None or acc_b is None:
            continue
        gap = 100 * (paper_val - acc_b)
        parts.append(f"{name}, {split_kind(a)}, {a.metrics.get('epochs_run')} epochs: {pct(acc_a)} on FER2013's "
                     f"labels (`{a.name}`), {pct(acc_b)} on FER+ majority labels (`{b.name}`), {pp(100 * (acc_b - acc_a))};"
                     f" the paper's {pct(paper_val)} is {abs(gap):.1f} points {'above' if gap >= 0 else 'below'} the FER+ figure")
        closer.append(abs(acc_b - paper_val) < abs(acc_a - paper_val))
    if not parts:
        return []
    verdict = (f"On FER+ labels {sum(closer)} of {len(closer)} model(s) come closer to the paper's figure; our epochs are "
               "fewer than the paper's 60, so this does not show whether they would reach it")
    return [f"- **FER+ labels.** The paper's recipe (`--preset paper`) trained on FER+ majority labels, scored on "
            f"FER+ majority labels of the same split: {'; '.join(parts)}. {verdict}. An observation about numbers, "
            "not a claim about which labels the paper's authors used; FER+ leaves out non-faces, ties and unclear "
            "faces, so its held-out faces are not quite the same set."]
