"""docs/RESULTS.md's machinery: ``collect`` reads the runs' records, ``text`` writes a value or a
run's fact, ``run_section`` and ``render`` make the document; ``cli`` is ``python -m convert results``.
The names below are what the others use (convert/ship.py's README, convert/reproduce.py)."""
from .collect import (FLIP_DIR, RECORDS, archive_runs, collect, epochs_planned, g, load_run, read_json,
                      recorded, scores, shown_path)
from .render import DEFAULT_DATA, render
from .text import RANDOM_INIT, machine_text, pct, pp, recipe_text, size, split_text

__all__ = ["DEFAULT_DATA", "FLIP_DIR", "RANDOM_INIT", "RECORDS", "archive_runs", "collect", "epochs_planned",
           "g", "load_run", "machine_text", "pct", "pp", "read_json", "recipe_text", "recorded", "render", "scores",
           "shown_path", "size", "split_text"]
