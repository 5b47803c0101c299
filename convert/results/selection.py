"""docs/RESULTS.md's "Chosen on validation": what python -m convert select recorded in docs/selection/
(``--json``; read by ``collect``), so the figures that chose the shipped model sit beside the test
figures, which never chose. One row per run (its latest record) and one per selection."""
from __future__ import annotations

from pathlib import Path

from .collect import Run, g, recorded, scores
from .text import NOT_RUN, pct, table


def run_rows(selections, runs: list[Run]) -> list[list[str]]:
    """Each run scored alone: validation with and without its mirror, from its latest selection record;
    int8 on its test split from its own conversion records, where they are archived."""
    latest: dict[str, tuple[Path, dict, dict]] = {}
    for path, doc in selections:  # oldest first: a later record of the same run replaces the earlier one
        for row in (r for r in doc["rows"] if len(r.get("runs") or []) == 1):
            name = Path(row["runs"][0]).name
            mine = latest.get(name, (path, doc, {}))
            both = mine[2] if mine[0] == path else {}
            latest[name] = (path, doc, {**both, bool(row.get("flip_tta")): row})
    by_name = {r.name: r for r in runs}
    rows = []
    for name, (path, doc, views) in latest.items():
        run = by_name.get(name)
        test = [pct(scores(x, "int8").get("accuracy")) if x else NOT_RUN for x in (run, run and run.flip)]
        n = next(iter(views.values())).get("n", "?")
        rows.append([f"`{name}`", str(n), pct(g(views.get(False), "val_accuracy"), 2),
                     pct(g(views.get(True), "val_accuracy"), 2), *test, f"`{path.name}`"])
    return rows


def cpu(machine) -> str:
    """The CPU and its count, the part of a machine that moves int8 timings and LiteRT's rounding."""
    m = machine if isinstance(machine, dict) else {}
    return f"{m.get('cpu') or m.get('processor') or '?'}, {m.get('cpu_count', '?')} CPUs"


def selection_rows(selections) -> list[list[str]]:
    rows = []
    for path, doc in selections:
        best = next((r for r in doc["rows"] if r.get("candidate") == doc.get("best")), {})
        refs = "; ".join(f"{pct(r.get('val_accuracy'), 2)} (`{r.get('model', '?')}`)"
                         for r in doc.get("references") or [])
        prov = recorded(doc)
        rows.append([f"`{path.name}`", str(len({Path(r) for row in doc["rows"] for r in row.get("runs") or []})),
                     str(doc.get("max_passes") or "any"),
                     f"{doc.get('best', '?')}: " + ", ".join(f"`{Path(r).name}`" for r in best.get("runs") or [])
                     + (" + mirror" if best.get("flip_tta") else ""),
                     pct(best.get("val_accuracy"), 2), refs or "—",
                     f"{(prov.get('date') or '?')[:10]}, {cpu(prov.get('machine'))}"])
    return rows


def selection_section(selections, runs: list[Run]) -> list[str]:
    if not selections:
        return []
    lines = ["## Chosen on validation", "",
             "What chose each shipped model: `python -m convert select RUN ... [--max-passes N] [--reference "
             "device/models/default] --json docs/selection/NAME.json` scores Keras runs, alone, with their mirror "
             "image and averaged, on the validation faces carved from Training (never the test split; one standard "
             "error is about 0.9 points on 2,850 faces). The int8 columns are each run's own conversion on its test "
             "split, from its records above: reported, never used to choose. FER+ runs (`ferplus-*`) are scored on "
             "FER+ majority labels in every column.", ""]
    lines += table(["run", "validation faces", "validation, alone", "validation, with mirror", "int8 test, alone",
                    "int8 test, with mirror", "latest selection record"], run_rows(selections, runs)) + [""]
    lines += ["Each selection (docs/selection/; its command is in the file's `provenance`): the best candidate at no "
              "more passes per face than allowed, and the converted files given as references (`--reference`: the "
              "shipped one first, then any candidate's own int8 file), run by LiteRT on the same faces.", ""]
    lines += table(["record", "runs", "passes allowed", "best on validation", "its validation accuracy",
                    "references, same faces", "date, machine"], selection_rows(selections)) + [""]
    return lines
