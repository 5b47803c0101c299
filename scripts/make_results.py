#!/usr/bin/env python3
"""docs/RESULTS.md from the runs' own records: collected and rendered, never typed by hand.

    python scripts/make_results.py                          # the records in docs/runs/ -> docs/RESULTS.md
    python scripts/make_results.py --runs runs --archive    # first copy runs/*'s records into docs/runs/

A finished run's small records (results.collect.RECORD_FILES; never a model) are archived in
docs/runs/NAME/ with archive.json (the file times git does not keep, model.keras's size), so a clean
checkout can regenerate this file. Every command shown is the one its stage recorded
(``provenance.command``, device/provenance.py); records marked ``recovered_from`` were rebuilt from an
earlier RESULTS.md because their run folder is gone. Anything missing shows as "not run"; an
unreadable file is named, never fatal. The selections of scripts/val_select.py ``--json`` beside the
records (docs/selection/ for docs/runs/) make its "Chosen on validation" section. No TensorFlow or Keras,
and no generation time: the same records give the same file. The work is in scripts/results/ (collect,
text, run_section, selection, render).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
from device.atomic import write_text  # noqa: E402
from device.errors import InputError, guarded  # noqa: E402
from results import RECORDS, archive_runs, collect, render  # noqa: E402


def parse_opt(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="make_results.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", action="append", type=Path, default=[],
                    help="a folder of run folders to read as well (repeatable); its runs replace same-named records")
    ap.add_argument("--archive", action="store_true", help="first copy the --runs folders' records into --records")
    ap.add_argument("--records", type=Path, default=RECORDS, help="the archived records (default: docs/runs)")
    ap.add_argument("--out", default="docs/RESULTS.md", help="markdown file to write, or - for stdout")
    ap.add_argument("--peer", type=Path, help="peer.json of scripts/peer_fer.py (default: RUNS/peer_fer/peer.json, "
                                              "else RECORDS/peer_fer/peer.json)")
    return ap.parse_args(argv)


def run(runs: list[Path], archive: bool, records: Path, out: str, peer: Path | None) -> None:
    missing = [r for r in runs if not r.is_dir()]
    if missing:
        raise InputError(f"--runs {missing[0]}: no such folder")
    if archive:
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


def main(argv=None) -> int:
    opt = parse_opt(argv)
    return guarded(lambda: run(**vars(opt)))


if __name__ == "__main__":
    sys.exit(main())
