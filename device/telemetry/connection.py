"""One broker connection, driven entirely from its owner's thread: connect, back off, say what failed.

The publisher and the fleet consumer both own a ``Link`` and call ``service()`` in their loop;
paho's callbacks run inside that call, on the same thread, so no lock is needed. A failure
(unreachable host, refused password, a publish the ACL refused, a lost connection) closes the
connection and schedules the next attempt with exponential back-off. Failures come in kinds
(network, tls, auth, acl, config); each outage says its kind once on stderr, not once per retry
(a broker going down says "closed the connection", not then "connection refused" every few
seconds), and the next success says so.
"""
from __future__ import annotations

import ssl
import sys
import time
from typing import Callable, Optional

from device.errors import FerliteError

from .client import (KEEPALIVE_S, describe_connect_error, describe_publish_refusal, describe_refusal,
                     make_client, require_paho, session_properties)
from .config import Broker

RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0   # back-off: 0.5, 1, 2, 4, ... 30 s between attempts
CONNACK_TIMEOUT_S = 10.0


def stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Link:
    def __init__(self, broker: Broker, client_id: str, *, name: str = "mqtt", say: Callable[[str], None] = stderr_line,
                 retry_note: str = "", will: tuple[str, bytes] | None = None, session_expiry_s: int | None = None,
                 on_ready: Optional[Callable[["Link"], None]] = None,
                 on_ack: Optional[Callable[[int, object], None]] = None,
                 on_message: Optional[Callable[[str, bytes], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.broker, self.client_id, self.name, self.say = broker, client_id, name, say
        self.retry_note, self.will, self.session_expiry_s = retry_note, will, session_expiry_s
        self.on_ready, self.on_ack, self.on_message, self.clock = on_ready, on_ack, on_message, clock
        self.mqtt = require_paho()
        self.client = None
        self.ready = False              # CONNACK said yes
        self.broken: tuple[str, str] | None = None  # (kind, message): set in a callback, acted on after it
        self.retry_at = 0.0
        self.backoff = RETRY_FIRST_S
        self.failures = 0
        self.last_error: str | None = None
        self._said: str | None = None   # the kind of failure last printed (not again until a success)
        self._confirmed_once = False
        self._connack_by = 0.0

    # -- driving it --------------------------------------------------------------------
    @property
    def backing_off(self) -> bool:
        """Disconnected and waiting for the next attempt."""
        return self.client is None and self.clock() < self.retry_at

    def service(self, timeout: float, idle: Callable[[float], object] = time.sleep) -> None:
        """Connect when due, or run paho's network loop for up to ``timeout`` seconds."""
        if self.client is None:
            if self.clock() >= self.retry_at:
                self._connect()
            if self.client is None:
                idle(min(timeout, max(0.0, self.retry_at - self.clock())))
            return
        rc = self.client.loop(timeout=timeout)
        if self.broken:
            self.fail(*self.broken)
        elif rc != self.mqtt.MQTT_ERR_SUCCESS:
            self.fail("network", f"lost the connection to {self._where()} ({self.mqtt.error_string(rc)})")
        elif not self.ready and self.clock() > self._connack_by:
            self.fail("network", f"{self._where()} did not answer the MQTT CONNECT within {CONNACK_TIMEOUT_S:g} s")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int | None:
        """QoS 1 publish on the open connection -> the message id, or None when it could not be queued."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != self.mqtt.MQTT_ERR_SUCCESS:
            self.broken = self.broken or ("network", f"publish to {topic} failed ({self.mqtt.error_string(info.rc)})")
            return None
        return info.mid

    def refused(self, reason, topic: str) -> None:
        """A PUBACK with a failure reason (the ACL): drop the connection, retry later."""
        self.broken = self.broken or ("acl", describe_publish_refusal(reason, topic, self.broker))

    def confirmed(self) -> None:
        """The broker accepted what we did: reset the back-off and say we are (back) in business."""
        self.backoff = RETRY_FIRST_S
        if self._said is not None or not self._confirmed_once:
            again = " again" if self._confirmed_once or self._said else ""
            self.say(f"{self.name}: connected{again} to {self.broker.address} as {self.client_id}")
        self._said = None
        self._confirmed_once = True

    def fail(self, kind: str, message: str) -> None:
        self.failures += 1
        self.last_error = message
        if kind != self._said:
            self.say(f"{self.name}: {message}; retrying with back-off{self.retry_note}")
            self._said = kind
        self.drop()
        self.retry_at = self.clock() + self.backoff
        self.backoff = min(self.backoff * 2, RETRY_MAX_S)

    def drop(self) -> None:
        """Close the connection (a DISCONNECT when it is still up); a new client next time."""
        client, self.client, self.ready, self.broken = self.client, None, False, None
        if client is None:
            return
        client.on_disconnect = None
        try:
            if client.disconnect() == self.mqtt.MQTT_ERR_SUCCESS:
                client.loop(timeout=0.2)  # writes the DISCONNECT and closes the socket
        except OSError:
            pass
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- paho --------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    def _connect(self) -> None:
        try:
            client = make_client(self.broker, self.client_id, self.will)
        except FerliteError as e:  # the credentials file vanished mid-run, say
            self.fail("config", str(e))
            return
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        kwargs = {"keepalive": KEEPALIVE_S, "clean_start": self.session_expiry_s is None}
        if self.session_expiry_s is not None:
            kwargs["properties"] = session_properties(self.session_expiry_s)
        try:
            client.connect(self.broker.host, self.broker.port, **kwargs)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            self.fail("tls" if isinstance(e, ssl.SSLError) else "network", describe_connect_error(e, self.broker))
            return
        self.client, self.ready, self.broken = client, False, None
        self._connack_by = self.clock() + CONNACK_TIMEOUT_S

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self.broken = ("auth", describe_refusal(reason, self.broker))
            return
        self.ready = True
        if self.on_ready:
            self.on_ready(self)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        if self.client is client:
            self.broken = self.broken or ("network", f"{self._where()} closed the connection ({reason})")

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        if self.on_ack:
            self.on_ack(mid, reason)

    def _on_message(self, client, userdata, message) -> None:
        if self.on_message:
            self.on_message(message.topic, message.payload)
