"""The ``--mqtt*`` flags, shared by device/run.py (publisher) and device/fleet.py (consumer).

Flags are parsed here, at the edge, into a checked ``MqttConfig`` / ``Broker``; the password is
never a flag (see config.py).
"""
from __future__ import annotations

import click

from device.errors import UsageError

from .client import require_paho
from .config import DEFAULT_OUTBOX_MB, ENV_PASSWORD, ENV_USERNAME, Broker, MqttConfig, make_broker, make_config

DEVICE_KEYS = ("device_id", "mqtt_outbox", "mqtt_outbox_mb", "mqtt_frames")
BROKER_KEYS = ("mqtt", "mqtt_ca", "mqtt_credentials")
CREDENTIALS_HELP = (f"File with username=... and password=... lines (chmod 600) [default: ${ENV_USERNAME} "
                    f"and ${ENV_PASSWORD}, else anonymous].")


def broker_options(required: bool):
    def decorate(f):
        for option in reversed((
            click.option("--mqtt", required=required, metavar="URL",
                         help="Broker and topic prefix: mqtt://host[:port][/prefix] or mqtts://... (TLS)"
                              + ("." if required else "; publishes events, aggregates and status there.")),
            click.option("--mqtt-ca", type=click.Path(dir_okay=False),
                         help="CA certificate (PEM) that signed the broker's certificate [default: the system's]."),
            click.option("--mqtt-credentials", type=click.Path(dir_okay=False), help=CREDENTIALS_HELP),
        )):
            f = option(f)
        return f
    return decorate


def device_options(f):
    for option in reversed((
        click.option("--device-id", help="This device's name under the prefix [default: the hostname]."),
        click.option("--mqtt-outbox", type=click.Path(dir_okay=False),
                     help="SQLite file holding what the broker has not acknowledged yet "
                          "[default: ~/.local/state/ferlite/outbox-DEVICE_ID.sqlite]."),
        click.option("--mqtt-outbox-mb", type=click.FloatRange(0.1), default=DEFAULT_OUTBOX_MB, show_default=True,
                     help="Outbox bound (MB on disk); when full, the oldest records go first (counted in the summary)."),
        click.option("--mqtt-frames", is_flag=True,
                     help="Also publish per-frame records (faces with probabilities) to PREFIX/DEVICE/frames."),
    )):
        f = option(f)
    return f


def mqtt_options(f):
    """Every device-side flag (device/run.py)."""
    return broker_options(required=False)(device_options(f))


def pop_mqtt_config(options: dict) -> MqttConfig | None:
    """Take the ``--mqtt*`` values out of click's ``options`` -> a checked config, or None without --mqtt."""
    values = {k: options.pop(k) for k in BROKER_KEYS + DEVICE_KEYS}
    if not values["mqtt"]:
        given = [k for k in BROKER_KEYS + DEVICE_KEYS if k != "mqtt" and values[k]
                 and not (k == "mqtt_outbox_mb" and values[k] == DEFAULT_OUTBOX_MB)]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} needs --mqtt URL")
        return None
    require_paho()  # before the camera starts: a missing package is one line and exit 4
    return make_config(values["mqtt"], values["mqtt_ca"], values["mqtt_credentials"], values["device_id"],
                       values["mqtt_outbox"], values["mqtt_outbox_mb"], values["mqtt_frames"])


def broker_from(options: dict) -> Broker:
    require_paho()
    return make_broker(options.pop("mqtt"), options.pop("mqtt_ca"), options.pop("mqtt_credentials"))
