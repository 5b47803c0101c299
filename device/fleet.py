"""The fleet consumer: subscribe to every device under a prefix, show one line per device, keep it all.

    python -m device.fleet --mqtt mqtt://broker:1883/ferlite --out fleet.jsonl
    python -m device.fleet --mqtt mqtts://broker:8883/ferlite --mqtt-ca ca.crt --mqtt-credentials fleet.cred
    python -m device.fleet check fleet.jsonl pi-1.jsonl pi-2.jsonl   # did every record arrive?

Every few seconds (--every) it prints one line per device: online/offline, last seen, fps,
faces, open driver alerts, records received and duplicates dropped. --out appends every
message as one JSON line (the record with its envelope, ``topic`` and ``received``; a
duplicate is kept but marked ``"duplicate": true``). Its MQTT session is persistent (a fixed
--client-id, kept by the broker for a day), so what devices publish while it is down or
reconnecting waits for it at the broker. Ctrl-C or SIGTERM ends it (exit 0).
"""
from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

if not __package__:  # run as a script: make ``device`` importable from the folder above it
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import click

from device.errors import InputError, commands_epilog, exit_with, run_commands
from device.log import dumps
from device.signals import stop_on_signals
from device.telemetry import delivery
from device.telemetry.connection import Link
from device.telemetry.consumer import Fleet
from device.telemetry.options import broker_from, broker_options

SESSION_EXPIRY_S = 24 * 3600   # how long the broker keeps this consumer's subscription and queue while it is away
TICK_S = 0.1


def default_client_id() -> str:
    return f"ferlite-fleet-{socket.gethostname().split('.')[0]}"


def watch(broker, client_id: str, out_path: str | None, every: float, duration: float | None,
          stop: threading.Event, subscribed: threading.Event | None = None) -> Fleet:
    """Consume until ``stop`` (a signal) or ``duration`` seconds; print the fleet every ``every`` seconds.
    ``subscribed`` is set once the broker has acknowledged the subscription."""
    fleet = Fleet(broker.prefix)
    try:
        out = open(out_path, "a", encoding="utf-8") if out_path else None
    except OSError as e:
        raise InputError(f"--out: cannot open {out_path}: {e.strerror or e}") from None

    def on_ready(link: Link) -> None:
        link.client.on_subscribe = on_subscribed
        link.client.subscribe(f"{broker.prefix}/#", qos=1)

    def on_subscribed(client, userdata, mid, reasons, properties) -> None:
        if any(r.is_failure for r in reasons):
            link.broken = ("acl", f"the broker refused the subscription to {broker.prefix}/# ({reasons[0]})")
            return
        link.confirmed()
        if subscribed is not None:
            subscribed.set()

    def on_message(name: str, payload: bytes) -> None:
        message = fleet.receive(name, payload)
        if message is not None and out is not None:
            out.write(dumps(message) + "\n")
            out.flush()

    link = Link(broker, client_id, name="fleet", session_expiry_s=SESSION_EXPIRY_S,
                on_ready=on_ready, on_message=on_message)
    end = time.monotonic() + duration if duration else None
    next_print = time.monotonic() + every
    try:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            link.service(TICK_S, idle=stop.wait)
            if time.monotonic() >= next_print:
                show(fleet)
                next_print += every
    finally:
        link.drop()
        if out is not None:
            out.close()
    show(fleet)
    return fleet


def show(fleet: Fleet) -> None:
    if fleet.devices:
        click.echo(f"-- {time.strftime('%H:%M:%S')}  {len(fleet.devices)} device(s)")
        for line in fleet.lines():
            click.echo(line)


PROG = "python -m device.fleet"
SUBCOMMANDS = {"check": delivery.cli}


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=commands_epilog(PROG, SUBCOMMANDS))
@broker_options(required=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Append every message here (JSON Lines).")
@click.option("--every", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="Seconds between fleet tables on stdout.")
@click.option("--client-id", default=default_client_id, show_default="ferlite-fleet-HOSTNAME",
              help="MQTT client id; the broker keeps this id's session (and what arrives meanwhile) for a day.")
@click.option("--duration", type=click.FloatRange(0.1), help="Stop after this many seconds [default: run until stopped].")
def cli(out_path, every, client_id, duration, **options):
    """Watch a fleet of ferlite devices on an MQTT broker."""
    broker = broker_from(options)
    with stop_on_signals() as stop:
        watch(broker, client_id, out_path, every, duration, stop)


def main(argv: list[str] | None = None) -> int:
    return run_commands(cli, SUBCOMMANDS, argv, prog_name=PROG)


if __name__ == "__main__":
    exit_with(main())
