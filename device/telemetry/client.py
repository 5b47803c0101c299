"""A paho-mqtt client built from a ``Broker``, and every connection failure said in one line.

MQTT 5 throughout: its acknowledgements carry a reason code, so a publish the broker's ACL
refuses comes back as "Not authorized" instead of being dropped in silence (MQTT 3.1.1).
paho is imported here, and this module only when ``--mqtt`` is used.
"""
from __future__ import annotations

import socket
import ssl

from device.errors import EnvironmentMissing

from .config import Broker, read_credentials

CONNECT_TIMEOUT_S = 5.0   # TCP + TLS handshake; an unreachable host costs the publisher thread this much
KEEPALIVE_S = 30          # a broker that vanished without closing the socket is noticed after 1.5x this
PIP_HINT = "pip install -r device/requirements-mqtt.txt"


def require_paho():
    """The paho client module, or one clear error (exit 4) naming the install line."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise EnvironmentMissing(f"--mqtt needs the paho-mqtt package: {PIP_HINT}") from None
    return mqtt


def make_client(broker: Broker, client_id: str, will: tuple[str, bytes] | None = None):
    """An unconnected MQTT 5 client: credentials, TLS (certificate and host name verified), Last Will."""
    mqtt = require_paho()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    creds = read_credentials(broker)
    if creds:
        client.username_pw_set(*creds)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca)  # None: the system's CAs
    if will:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.connect_timeout = CONNECT_TIMEOUT_S
    return client


def session_properties(expiry_s: int):
    """CONNECT properties that keep a session (subscriptions, queued messages) for ``expiry_s`` seconds."""
    require_paho()
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    return props


def username(broker: Broker) -> str | None:
    creds = read_credentials(broker)
    return creds[0] if creds else None


def describe_connect_error(e: BaseException, broker: Broker) -> str:
    """Why the TCP/TLS connection failed, in words a user can act on."""
    where = f"{broker.host}:{broker.port}"
    if isinstance(e, ssl.SSLCertVerificationError):
        hint = "" if broker.ca else "; pass the broker's CA with --mqtt-ca"
        return f"TLS: the certificate of {where} is not trusted ({e.verify_message}){hint}"
    if isinstance(e, ssl.SSLError):
        return f"TLS handshake with {where} failed ({e.reason or e}); is it an mqtts:// port?"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the broker's host name {broker.host!r}"
    if isinstance(e, ConnectionRefusedError):
        return f"cannot reach the broker at {where}: connection refused (is it running?)"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return f"cannot reach the broker at {where}: timed out after {CONNECT_TIMEOUT_S:g} s"
    if isinstance(e, OSError):
        return f"cannot reach the broker at {where}: {e.strerror or e}"
    return f"cannot connect to {where}: {type(e).__name__}: {e}"


def describe_refusal(reason, broker: Broker) -> str:
    """A CONNACK that refused us (wrong password, unknown user, banned client)."""
    user = username(broker)
    who = f"user {user!r}" if user else "an anonymous client"
    return (f"{broker.host}:{broker.port} refused the connection for {who}: {reason} "
            "(check the username and password)")


def describe_publish_refusal(reason, topic: str, broker: Broker) -> str:
    user = username(broker)
    who = f"user {user!r}" if user else "an anonymous client"
    return (f"{broker.host}:{broker.port} refused to let {who} publish to {topic}: {reason} "
            "(the broker's ACL lets a device publish only under its own id)")
