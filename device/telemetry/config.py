"""Where and as whom the device publishes: parsed and checked once, at the command line.

    mqtt://host[:port][/prefix]     plain MQTT (port 1883)
    mqtts://host[:port][/prefix]    MQTT over TLS (port 8883), verified against --mqtt-ca or the system CAs

The username and password never appear on the command line (where ``ps`` shows them to every
user): they come from FERLITE_MQTT_USERNAME / FERLITE_MQTT_PASSWORD or from a credentials file
(``username=...`` and ``password=...`` lines). The config holds only where to find them, so no
secret ends up in a log, a record or a repr. Nothing here imports paho.
"""
from __future__ import annotations

import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from device.errors import InputError, UsageError

PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PREFIX = "ferlite"
ENV_USERNAME, ENV_PASSWORD = "FERLITE_MQTT_USERNAME", "FERLITE_MQTT_PASSWORD"
# One MQTT topic level: no '/', and none of the wildcards '+' and '#'.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# The outbox file's bound on disk; with its write-ahead log (about 0.5 MB at most) it stays within 10 MB
# and holds 24 h of kiosk aggregates twice over (figures: scripts/release/bench_mqtt.py, README "Fleet telemetry").
DEFAULT_OUTBOX_MB = 8.5


@dataclass(frozen=True)
class Broker:
    """An MQTT broker and the topic prefix under it; ``credentials`` is a file path, "env" or None."""
    url: str
    host: str
    port: int
    prefix: str
    tls: bool
    ca: str | None = None
    credentials: str | None = None

    @property
    def address(self) -> str:
        """The URL without anything secret (there never is: credentials in the URL are refused)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}/{self.prefix}"


@dataclass(frozen=True)
class MqttConfig:
    """Everything ``--mqtt`` and its companions say (device side)."""
    broker: Broker
    device_id: str
    outbox: str
    outbox_mb: float = DEFAULT_OUTBOX_MB
    frames: bool = False     # per-frame records (faces with probabilities) only when asked for


def parse_url(url: str) -> tuple[str, int, str, bool]:
    """``mqtt[s]://host[:port][/prefix]`` -> (host, port, prefix, tls); UsageError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in PORTS:
        raise UsageError(f"--mqtt: expected mqtt://host[:port][/prefix] or mqtts://..., got {url!r}")
    if parts.username or parts.password:
        raise UsageError(f"--mqtt: no credentials in the URL (it shows in 'ps'); use {ENV_USERNAME} and "
                         f"{ENV_PASSWORD} or --mqtt-credentials FILE")
    try:
        port = parts.port or PORTS[parts.scheme]
    except ValueError:
        raise UsageError(f"--mqtt: bad port in {url!r}") from None
    if not parts.hostname:
        raise UsageError(f"--mqtt: no host in {url!r}")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    if parts.query or parts.fragment or any(not ID_PATTERN.match(level) for level in prefix.split("/")):
        raise UsageError(f"--mqtt: the topic prefix {prefix!r} must be levels of letters, digits, '_', '.', '-'")
    return parts.hostname, port, prefix, parts.scheme == "mqtts"


def make_broker(url: str, ca: str | None = None, credentials_file: str | None = None) -> Broker:
    """The broker options checked together: a CA only with mqtts://, files that exist, credentials readable."""
    host, port, prefix, tls = parse_url(url)
    if ca and not tls:
        raise UsageError("--mqtt-ca needs an mqtts:// URL (TLS)")
    if ca and not Path(ca).is_file():
        raise InputError(f"--mqtt-ca: no such file: {ca}")
    source = credentials_file or ("env" if os.environ.get(ENV_USERNAME) else None)
    broker = Broker(url=url, host=host, port=port, prefix=prefix, tls=tls, ca=ca, credentials=source)
    read_credentials(broker)  # fail now, before the camera starts, not at the first connection
    return broker


def read_credentials(broker: Broker) -> tuple[str, str | None] | None:
    """(username, password) from the file or the environment the broker names; None: anonymous."""
    if broker.credentials is None:
        return None
    if broker.credentials == "env":
        return os.environ[ENV_USERNAME], os.environ.get(ENV_PASSWORD)
    return credentials_from_file(Path(broker.credentials))


def credentials_from_file(path: Path) -> tuple[str, str | None]:
    """``username=NAME`` and ``password=SECRET`` lines (``#`` comments and blank lines allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"--mqtt-credentials: cannot read {path}: {e.strerror or e}") from None
    fields = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() not in ("username", "password"):
            raise InputError(f"--mqtt-credentials: {path} line {n}: expected username=... or password=...")
        fields[key.strip()] = value.strip()
    if not fields.get("username"):
        raise InputError(f"--mqtt-credentials: {path} has no username=... line")
    return fields["username"], fields.get("password")


def credentials_warning(path: str | None) -> str | None:
    """A line to print when a credentials file can be read by other users (as ssh does for keys)."""
    if not path or path == "env":
        return None
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"mqtt: warning: {path} can be read by other users; chmod 600 {path}"
    return None


def default_device_id() -> str:
    """The hostname's first label (a Pi's name), made into one topic level."""
    name = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:64] or "device"


def check_device_id(device_id: str) -> str:
    if not ID_PATTERN.match(device_id):
        raise UsageError(f"--device-id: {device_id!r} must be 1-64 letters, digits, '_', '.' or '-' "
                         "(it is one MQTT topic level)")
    return device_id


def default_outbox(device_id: str) -> Path:
    """One outbox per device id, under $XDG_STATE_HOME (~/.local/state): it survives reboots, unlike /tmp."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "ferlite" / f"outbox-{device_id}.sqlite"


def make_config(url: str, ca: str | None, credentials_file: str | None, device_id: str | None,
                outbox: str | None, outbox_mb: float = DEFAULT_OUTBOX_MB, frames: bool = False) -> MqttConfig:
    """The device's ``--mqtt*`` flags -> a checked MqttConfig (UsageError / InputError otherwise)."""
    broker = make_broker(url, ca, credentials_file)
    device_id = check_device_id(device_id or default_device_id())
    return MqttConfig(broker=broker, device_id=device_id, outbox=str(outbox or default_outbox(device_id)),
                      outbox_mb=outbox_mb, frames=frames)
