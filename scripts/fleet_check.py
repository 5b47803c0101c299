"""Did the fleet get everything? Compare device logs with what the consumer received.

    python scripts/fleet_check.py fleet.jsonl pi-1.jsonl pi-2.jsonl

fleet.jsonl is ``python -m device.fleet --out``'s file; each LOG is a device/run.py --mqtt
``--log`` file (its summary names the device). For each log: every record the fleet should
have (events, aggregates, start, fps, summary; frames when they were published) must be among
the device's received records, in the same order, with consecutive sequence numbers.
Exit 0 when all logs check out, 1 otherwise.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.telemetry.topics import kind_of, strip_envelope  # noqa: E402

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


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python scripts/fleet_check.py FLEET_JSONL LOG...", file=sys.stderr)
        return 2
    received = read_jsonl(argv[0])
    results = [check(log, received) for log in argv[1:]]
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
