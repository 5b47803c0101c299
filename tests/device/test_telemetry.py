"""Fleet telemetry end to end against a real mosquitto (tests/device/mqtt_broker.py): device/run.py
--mqtt on the real clip, device.fleet as the consumer, the broker stopped and started, refused
passwords and topics, an unreachable host, SIGTERM while disconnected, TLS."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mqtt_broker import free_port

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "device" / "run.py"
WAIT_S = 30  # generous upper bound for anything to arrive; the tests normally take far less


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def fleet_records(log: Path, frames: bool = False) -> list[dict]:
    """What the device's JSONL log holds that the fleet must get, in log order."""
    from device.telemetry.topics import kind_of
    return [r for r in read_jsonl(log) if kind_of(r, frames)]


def outbox_rows(path: Path, device: str) -> list[dict]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT payload FROM outbox WHERE device=? ORDER BY seq", (device,)).fetchall()
    return [json.loads(p) for (p,) in rows]


def fleet_check(*paths) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device.fleet", "check", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def mqtt_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mqtt:")]


class Consumer:
    """``python -m device.fleet``'s loop (device.fleet.watch) on a thread, writing its --out file."""

    def __init__(self, broker, tmp_path: Path, tls_ca: Path | None = None, client_id: str = "test-fleet"):
        from device.fleet import watch
        from device.telemetry.config import make_broker
        self.out = tmp_path / f"{client_id}.jsonl"
        self.stop, self.subscribed = threading.Event(), threading.Event()
        target = make_broker(broker.url(tls=tls_ca is not None), str(tls_ca) if tls_ca else None,
                             str(broker.credentials("fleet")))
        self.thread = threading.Thread(target=watch, daemon=True,
                                       args=(target, client_id, str(self.out), 3600.0, None, self.stop, self.subscribed))
        self.thread.start()
        assert self.subscribed.wait(WAIT_S), "the consumer did not subscribe"

    def messages(self, device: str) -> list[dict]:
        return [m for m in read_jsonl(self.out) if m.get("device") == device]

    def records(self, device: str) -> list[dict]:
        """The device's records as received, duplicates dropped, envelope and all."""
        return [m for m in self.messages(device) if "seq" in m and not m.get("duplicate")]

    def wait_for(self, device: str, count: int) -> list[dict]:
        deadline = time.monotonic() + WAIT_S
        while len(self.records(device)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.records(device)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def consumer(broker, tmp_path):
    c = Consumer(broker, tmp_path)
    yield c
    c.close()


def device_args(broker, clip: Path, model: Path, tmp_path: Path, device: str, *extra, user: str | None = None,
                password: str | None = None, url: str | None = None) -> list[str]:
    """device/run.py on ``clip`` as ``device`` (logged in as ``user``, default the device), log and outbox in tmp_path."""
    return [sys.executable, str(RUN_PY), "--source", str(clip), "--model", str(model),
            "--log", str(tmp_path / f"{device}.jsonl"), "--mqtt", url or broker.url(), "--device-id", device,
            "--mqtt-credentials", str(broker.credentials(user or device, password)),
            "--mqtt-outbox", str(tmp_path / f"{device}.sqlite"), *map(str, extra)]


def run_device(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(device_args(*args, **kw), capture_output=True, text=True, timeout=120)


def check_received(consumer: Consumer, device: str, expected: list[dict], first_seq: int = 1) -> list[dict]:
    """The consumer got exactly ``expected`` (the log's records), in order, numbered without a gap."""
    from device.telemetry.topics import kind_of, strip_envelope
    got = consumer.wait_for(device, len(expected))
    assert [strip_envelope({k: v for k, v in m.items() if k not in ("topic", "received")}) for m in got] == expected
    assert [m["seq"] for m in got] == list(range(first_seq, first_seq + len(expected)))
    assert len({m["stream"] for m in got}) == 1
    assert all(m["topic"] == f"ferlite/{device}/{kind_of(r, True)}" for m, r in zip(got, expected))
    return got


def test_two_devices_consumer_gets_exactly_what_the_logs_hold(broker, consumer, faces_dir, model_int8, tmp_path):
    clip = faces_dir / "fer_test.mp4"
    kiosk = subprocess.Popen(device_args(broker, clip, model_int8, tmp_path, "pi-1", "--mode", "kiosk",
                                         "--interval", "0.5"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver = subprocess.Popen(device_args(broker, clip, model_int8, tmp_path, "pi-2", "--mode", "driver",
                                          "--alert-after", "0.5", "--max-frames", "60", "--fps-every", "20",
                                          "--mqtt-frames"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in (kiosk, driver):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert mqtt_lines(err) == [line for line in mqtt_lines(err) if line.startswith("mqtt: connected to")], err
        assert len(mqtt_lines(err)) == 1, err
    expected1 = fleet_records(tmp_path / "pi-1.jsonl")
    expected2 = fleet_records(tmp_path / "pi-2.jsonl", frames=True)
    assert sum(r.get("event") == "aggregate" for r in expected1) >= 8            # 4.6 s clip, 0.5 s windows
    assert sum(r.get("event") == "alert" for r in expected2) >= 1
    assert sum(r["type"] == "frame" for r in expected2) == 60                   # opted in with --mqtt-frames
    assert not any(r["type"] == "frame" for r in expected1)                     # never without it
    check_received(consumer, "pi-1", expected1)
    check_received(consumer, "pi-2", expected2)
    summary = expected1[-1]
    assert summary["type"] == "summary" and summary["mqtt"]["device"] == "pi-1" and summary["mqtt"]["dropped"] == 0
    for device in ("pi-1", "pi-2"):
        presence = [m for m in consumer.messages(device) if m.get("type") == "presence"]
        assert [m["state"] for m in presence] == ["online", "offline"] and presence[-1]["reason"] == "stopped"
        assert outbox_rows(tmp_path / f"{device}.sqlite", device) == []     # everything acknowledged
    from device.telemetry.consumer import Fleet
    fleet = Fleet("ferlite")
    for m in read_jsonl(consumer.out):
        fleet.receive(m["topic"], json.dumps(m).encode())
    lines = fleet.lines()
    assert [line.split()[:2] for line in lines] == [["pi-1", "offline"], ["pi-2", "offline"]]
    p = fleet_check(consumer.out, tmp_path / "pi-1.jsonl", tmp_path / "pi-2.jsonl")
    assert p.returncode == 0 and p.stdout.count("records received in order, seq 1-") == 2, p.stdout


class ChaosSource:
    """The real clip, paced like a camera, stopping and starting the broker at given frames."""

    def __init__(self, source, actions: dict, pace_s: float):
        self.source, self.actions, self.pace_s = source, actions, pace_s
        self.fps, self.stills, self.description = source.fps, source.stills, source.description

    def read(self):
        time.sleep(self.pace_s)
        frame = self.source.read()
        if frame is not None and frame.index in self.actions:
            self.actions[frame.index]()
        return frame

    def take_skipped(self):
        return self.source.take_skipped()

    def close(self):
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_broker_stopped_and_started_mid_run_nothing_lost(broker, consumer, faces_dir, model_int8, tmp_path,
                                                         monkeypatch, capsys):
    import device.run as run
    from device.telemetry.config import make_config
    real_open = run.open_source
    monkeypatch.setattr(run, "open_source", lambda *a, **k: ChaosSource(real_open(*a, **k),
                                                                        {20: broker.stop, 45: broker.start}, 0.025))
    log = tmp_path / "pi-1.jsonl"
    cfg = make_config(broker.url(), None, str(broker.credentials("pi-1")), "pi-1", str(tmp_path / "pi-1.sqlite"))
    capsys.readouterr()
    summary = run.run_loop(run.RunOptions(source=str(faces_dir / "fer_test.mp4"), model=str(model_int8),
                                          mode="kiosk", interval=0.25, fps_every=10, log_path=str(log), mqtt=cfg))
    err = capsys.readouterr().err
    assert summary["frames"] == 115 and summary["mqtt"]["errors"] >= 1
    expected = fleet_records(log)
    got = check_received(consumer, "pi-1", expected)
    # Duplicates are only records already received, marked as such and identical to the first copy.
    first = {m["seq"]: m for m in got}
    dups = [m for m in consumer.messages("pi-1") if m.get("duplicate")]
    for d in dups:
        same = {k: v for k, v in first[d["seq"]].items() if k not in ("received",)}
        assert {k: v for k, v in d.items() if k not in ("received", "duplicate")} == same
    assert outbox_rows(tmp_path / "pi-1.sqlite", "pi-1") == []
    lines = mqtt_lines(err)
    assert len([line for line in lines if "closed the connection" in line or "lost the connection" in line]) == 1, err
    assert sum("connected again" in line for line in lines) == 1, err
    assert len(lines) == 3, err  # connected, lost (said once for the whole outage), connected again


def test_wrong_password_one_line_loop_runs_outbox_keeps_records(broker, faces_dir, model_int8, tmp_path):
    p = run_device(broker, faces_dir / "fer_test.mp4", model_int8, tmp_path, "pi-1", "--mode", "kiosk",
                   "--interval", "0.5", password="not-the-password")
    assert p.returncode == 0, p.stderr
    lines = mqtt_lines(p.stderr)
    assert len(lines) == 2, p.stderr
    assert lines[0].startswith("mqtt: 127.0.0.1:") and "refused the connection for user 'pi-1': Not authorized" in lines[0]
    assert "retrying with back-off, records wait in the outbox" in lines[0]
    expected = fleet_records(tmp_path / "pi-1.jsonl")
    assert expected[-1]["frames"] == 115                      # the loop ran to the end of the clip
    assert "records not yet acknowledged stay in" in lines[1] and lines[1].startswith(f"mqtt: {len(expected)} ")
    s = expected[-1]["mqtt"]
    assert s["errors"] >= 1 and s["sent"] == 0 and "Not authorized" in s["last_error"]
    from device.telemetry.topics import strip_envelope
    rows = outbox_rows(tmp_path / "pi-1.sqlite", "pi-1")
    assert [strip_envelope(r) for r in rows] == expected and [r["seq"] for r in rows] == list(range(1, len(rows) + 1))


def test_acl_refuses_another_device_id(broker, consumer, faces_dir, model_int8, tmp_path):
    p = run_device(broker, faces_dir / "fer_test.mp4", model_int8, tmp_path, "pi-2", "--max-frames", "40",
                   "--mode", "kiosk", "--interval", "0.5", user="pi-1")   # logs in as pi-1, claims to be pi-2
    assert p.returncode == 0, p.stderr
    lines = mqtt_lines(p.stderr)
    assert len(lines) == 2, p.stderr
    assert "refused to let user 'pi-1' publish to ferlite/pi-2/" in lines[0] and "Not authorized" in lines[0]
    assert "the broker's ACL lets a device publish only under its own id" in lines[0]
    expected = fleet_records(tmp_path / "pi-2.jsonl")
    assert expected[-1]["frames"] == 40
    assert len(outbox_rows(tmp_path / "pi-2.sqlite", "pi-2")) == len(expected)
    time.sleep(0.3)
    assert consumer.messages("pi-2") == []                    # nothing got through, not even 'online'
    p = fleet_check(consumer.out, tmp_path / "pi-2.jsonl")
    assert p.returncode == 1 and f"MISSING {len(expected)} of {len(expected)} records" in p.stdout


def test_unreachable_host_one_line_records_kept(broker, faces_dir, model_int8, tmp_path):
    port = free_port()  # nothing listens there
    p = run_device(broker, faces_dir / "fer_test.mp4", model_int8, tmp_path, "pi-1", "--max-frames", "40",
                   url=f"mqtt://127.0.0.1:{port}/ferlite")
    assert p.returncode == 0, p.stderr
    lines = mqtt_lines(p.stderr)
    assert lines[0] == (f"mqtt: cannot reach the broker at 127.0.0.1:{port}: connection refused (is it running?); "
                        f"retrying with back-off, records wait in the outbox {tmp_path / 'pi-1.sqlite'}")
    assert len(lines) == 2 and "stay in" in lines[1], p.stderr
    assert len(outbox_rows(tmp_path / "pi-1.sqlite", "pi-1")) == len(fleet_records(tmp_path / "pi-1.jsonl"))


def test_sigterm_while_disconnected_then_next_run_sends_the_backlog(broker, faces_dir, model_int8, tmp_path):
    broker.stop()   # the network is down from the start
    first = tmp_path / "first"
    first.mkdir()
    args = device_args(broker, faces_dir / "fer_woman2.mp4", model_int8, first, "pi-1", "--mode", "kiosk",
                       "--interval", "0.5", "--mqtt-outbox", tmp_path / "outbox.sqlite")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(r.get("event") == "aggregate"
                                                  for r in read_jsonl(first / "pi-1.jsonl")) < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
        stop_s = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert stop_s < 5, "SIGTERM while disconnected must not wait on the network"
    backlog = fleet_records(first / "pi-1.jsonl")
    assert backlog[-1]["status"] == "SIGTERM" and backlog[-1]["frames"] < 464
    assert len(outbox_rows(tmp_path / "outbox.sqlite", "pi-1")) == len(backlog)

    broker.start()
    consumer = Consumer(broker, tmp_path)
    try:
        second = tmp_path / "second"
        second.mkdir()
        p = subprocess.run(device_args(broker, faces_dir / "fer_test.mp4", model_int8, second, "pi-1",
                                       "--max-frames", "30", "--mqtt-outbox", tmp_path / "outbox.sqlite"),
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert f"mqtt: {len(backlog)} records from an earlier run wait in" in p.stderr
        check_received(consumer, "pi-1", backlog + fleet_records(second / "pi-1.jsonl"))
    finally:
        consumer.close()
    assert outbox_rows(tmp_path / "outbox.sqlite", "pi-1") == []


def test_tls_with_ca_and_password(tls_broker, tls_files, faces_dir, model_int8, tmp_path):
    consumer = Consumer(tls_broker, tmp_path, tls_ca=tls_files["ca"])
    try:
        p = run_device(tls_broker, faces_dir / "fer_test.mp4", model_int8, tmp_path, "pi-1", "--max-frames", "30",
                       "--fps-every", "10", "--mqtt-ca", tls_files["ca"], url=tls_broker.url(tls=True))
        assert p.returncode == 0, p.stderr
        assert mqtt_lines(p.stderr) == [f"mqtt: connected to {tls_broker.url(tls=True)} as ferlite-pi-1"]
        check_received(consumer, "pi-1", fleet_records(tmp_path / "pi-1.jsonl"))
    finally:
        consumer.close()


def test_tls_without_the_ca_is_one_line(tls_broker, tmp_path):
    """The broker's certificate is signed by a CA the system does not know: said once, records kept."""
    from device.telemetry.config import make_config
    from device.telemetry.publisher import Publisher
    said = []
    cfg = make_config(tls_broker.url(tls=True), None, str(tls_broker.credentials("pi-1")), "pi-1",
                      str(tmp_path / "o.sqlite"))
    pub = Publisher(cfg, say=said.append).start()
    for i in range(5):
        pub.put("status", {"type": "fps", "frame": i, "fps": 10.0})
    deadline = time.monotonic() + WAIT_S
    while pub.link.failures < 3 and time.monotonic() < deadline:   # 0.5 + 1 s of back-off
        time.sleep(0.05)
    stats = pub.close()
    assert stats["errors"] >= 3 and stats["pending"] == 5 and stats["sent"] == 0
    assert len(said) == 1, said
    assert said[0].startswith(f"mqtt: TLS: the certificate of 127.0.0.1:{tls_broker.tls_port} is not trusted")
    assert said[0].endswith("pass the broker's CA with --mqtt-ca; retrying with back-off, records wait in the outbox "
                            f"{tmp_path / 'o.sqlite'}")
