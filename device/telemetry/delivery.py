"""Did the fleet get everything? Compare device logs with what the consumer received.

    python -m device.fleet check fleet.jsonl pi-1.jsonl pi-2.jsonl

fleet.jsonl is ``python -m device.fleet --out``'s file; each LOG is a device/run.py --mqtt
``--log`` file (its summary names the device). For each log: every record the fleet should
have (events, aggregates, start, fps, summary; frames when they were published) must be among
the device's received records, in the same order, with consecutive sequence numbers.
Exit 0 when all logs check out, 1 otherwise.
"""
from __future__ import annotations

import json

import click

from device.errors import RunFailed
from device.telemetry.topics import kind_of, strip_envelope

ANNOTATIONS = ("topic", "received", "duplicate")


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check(log_path: str, received: list[dict]) -> tuple[bool, str]:
    records = read_jsonl(log_path)
    device = ((records[-1] if records else {}).get("mqtt") or {}).get("device")
    if not device:
        return False, f"{log_path}: no summary with an 'mqtt' block (was it run with --mqtt?)"
    mine = [m for m in received if m.get("device") == device and "seq" in m and not m.get("duplicate")]
    frames = any(m.get("type") == "frame" for m in mine)
    expected = [r for r in records if kind_of(r, frames)]
    got = [strip_envelope({k: v for k, v in m.items() if k not in ANNOTATIONS}) for m in mine]
    starts = [i for i in range(len(got) - len(expected) + 1) if got[i] == expected[0]] if expected else []
    for i in starts:
        if got[i:i + len(expected)] == expected:
            seqs = [m["seq"] for m in mine[i:i + len(expected)]]
            gapless = seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            dups = sum(1 for m in received if m.get("device") == device and m.get("duplicate"))
            return gapless, (f"{log_path} ({device}): all {len(expected)} records received in order, seq "
                             f"{seqs[0]}-{seqs[-1]}{'' if gapless else ' WITH GAPS'}; {dups} duplicates dropped "
                             "for this device")
    have = sum(1 for r in expected if r in got)
    return False, f"{log_path} ({device}): MISSING {len(expected) - have} of {len(expected)} records (or out of order)"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("fleet_jsonl", type=click.Path(exists=True, dir_okay=False))
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def cli(fleet_jsonl, logs):
    """Check that FLEET_JSONL (python -m device.fleet --out) holds every record of each device LOG, in order."""
    received = read_jsonl(fleet_jsonl)
    results = [check(log, received) for log in logs]
    for _, line in results:
        click.echo(line)
    failed = sum(not ok for ok, _ in results)
    if failed:
        raise RunFailed(f"{failed} of {len(results)} logs did not arrive whole")
