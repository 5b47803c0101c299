"""Fleet telemetry: the device loop's events, aggregates, fps and summary to an MQTT broker.

Optional (``--mqtt URL``); paho-mqtt is imported only then (``device/requirements-mqtt.txt``).

    config.py     URL, device id, credentials, CA, outbox path: parsed and checked at the command line
    topics.py     which JSONL records go out, under which topic, with which envelope (one place)
    options.py    the --mqtt* flags (click), shared by device/run.py and device/fleet.py
    outbox.py     the on-disk SQLite outbox: per-device sequence numbers, bounded, oldest dropped first
    client.py     a paho client built from the config (TLS, password, Last Will), errors in one line
    connection.py one broker connection: connect, back-off, one stderr line per outage
    publisher.py  the publishing thread: outbox -> broker (QoS 1), resend after a reconnect
    tee.py        a log writer that writes the JSONL line and hands fleet records to the publisher
    consumer.py   the fleet's state as a consumer sees it (dedup by sequence, one line per device)

``python -m device.fleet --mqtt URL`` is the consumer's command line (device/fleet.py).
"""
