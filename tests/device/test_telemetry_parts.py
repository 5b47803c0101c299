"""Telemetry parts without a broker: URL and credential checks, the outbox on disk, topics, the
consumer's duplicate filter, the --mqtt flags' errors, and paho staying unimported without --mqtt."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device.errors import InputError, UsageError
from device.telemetry.config import (ENV_PASSWORD, ENV_USERNAME, make_broker, make_config, parse_url,
                                     read_credentials)
from device.telemetry.consumer import Fleet
from device.telemetry.outbox import Outbox
from device.telemetry.topics import kind_of, split_topic, strip_envelope
from timing import patient  # noqa: E402  (hang guards, stretched under emulation)

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "device" / "run.py"


@pytest.mark.parametrize("url, expected", [
    ("mqtt://broker", ("broker", 1883, "ferlite", False)),
    ("mqtts://broker.example.org/fleet/shops", ("broker.example.org", 8883, "fleet/shops", True)),
    ("mqtt://127.0.0.1:18830/ferlite/", ("127.0.0.1", 18830, "ferlite", False)),
    ("mqtt://[::1]:1884", ("::1", 1884, "ferlite", False)),
])
def test_parse_url(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize("url, words", [
    ("http://broker", "expected mqtt://host"),
    ("broker:1883", "expected mqtt://host"),
    ("mqtt://pi:secret@broker", "no credentials in the URL"),
    ("mqtt://broker:99999", "bad port"),
    ("mqtt://broker/a/+/b", "topic prefix"),
    ("mqtt:///ferlite", "no host"),
])
def test_bad_urls_are_usage_errors(url, words):
    with pytest.raises(UsageError, match=words):
        parse_url(url)


def test_credentials_from_file_env_or_none(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_USERNAME, raising=False)
    assert read_credentials(make_broker("mqtt://b")) is None
    cred = tmp_path / "pi.cred"
    cred.write_text("# pi-1's login\nusername=pi-1\npassword = s3cret=x\n")
    broker = make_broker("mqtt://b", credentials_file=str(cred))
    assert read_credentials(broker) == ("pi-1", "s3cret=x") and "s3cret" not in repr(broker)
    monkeypatch.setenv(ENV_USERNAME, "pi-2")
    monkeypatch.setenv(ENV_PASSWORD, "from-env")
    assert read_credentials(make_broker("mqtt://b")) == ("pi-2", "from-env")
    cred.write_text("user=pi-1\n")
    with pytest.raises(InputError, match="line 1: expected username=... or password=..."):
        make_broker("mqtt://b", credentials_file=str(cred))
    with pytest.raises(InputError, match="cannot read"):
        make_broker("mqtt://b", credentials_file=str(tmp_path / "missing.cred"))


def test_ca_needs_mqtts_and_an_existing_file(tmp_path):
    with pytest.raises(UsageError, match="--mqtt-ca needs an mqtts:// URL"):
        make_broker("mqtt://b", ca=str(tmp_path / "ca.crt"))
    with pytest.raises(InputError, match="no such file"):
        make_broker("mqtts://b", ca=str(tmp_path / "ca.crt"))


def test_device_id_is_one_topic_level(tmp_path):
    assert make_config("mqtt://b", None, None, "van-07", str(tmp_path / "o.sqlite")).device_id == "van-07"
    for bad in ("van/07", "van+", "#", ""):
        with pytest.raises(UsageError, match="--device-id"):
            make_config("mqtt://b", None, None, bad or " ", None)


def test_which_records_go_where():
    assert kind_of({"type": "event", "event": "aggregate"}) == "aggregate"
    assert kind_of({"type": "event", "event": "alert", "phase": "start"}) == "events"
    assert [kind_of({"type": t}) for t in ("start", "fps", "summary")] == ["status"] * 3
    assert kind_of({"type": "frame", "faces": []}) is None                  # per-frame: only when opted in
    assert kind_of({"type": "frame", "faces": []}, frames=True) == "frames"
    assert split_topic("ferlite", "ferlite/pi-1/events") == ("pi-1", "events")
    assert split_topic("ferlite", "ferlite/pi-1/other") is None and split_topic("ferlite", "x/pi-1/events") is None


def test_outbox_numbers_persist_across_runs_and_survive_reopening(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path, "pi-1", max_bytes=10_000_000)
    assert box.add([("status", {"type": "start"}, 1.0), ("events", {"type": "event", "event": "alert"}, 2.0)]) == 0
    stream = box.stream
    box.remove([1])
    box.close()
    box = Outbox(path, "pi-1", max_bytes=10_000_000)   # the next run
    box.add([("status", {"type": "summary"}, 3.0)])
    rows = box.pending()
    assert [r.seq for r in rows] == [2, 3] and box.stream == stream and box.count() == 2
    msgs = [json.loads(r.payload) for r in rows]
    assert msgs[0] == {"device": "pi-1", "stream": stream, "seq": 2, "time": 2.0, "type": "event", "event": "alert"}
    assert strip_envelope(msgs[1]) == {"type": "summary"}
    other = Outbox(path, "pi-2", max_bytes=10_000_000)  # another device in the same file counts on its own
    other.add([("status", {"type": "start"}, 4.0)])
    assert [r.seq for r in other.pending()] == [1] and other.stream != stream
    other.close()
    box.close()


def test_outbox_bound_drops_the_oldest_and_counts_them(tmp_path):
    record = {"type": "event", "event": "aggregate", "pad": "x" * 500}
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "pi-1", max_bytes=100_000)
    dropped = sum(box.add([("aggregate", record, float(i))]) for i in range(1000))
    kept = [r.seq for r in box.pending(limit=10_000)]
    assert 100 < len(kept) < 200 and dropped == 1000 - len(kept) == box.dropped_total()
    assert kept == list(range(1001 - len(kept), 1001))            # the newest, in order
    assert box.used_bytes() <= 100_000
    box.close()
    assert path.stat().st_size <= 100_000 + 2 * box.page_size     # on disk too (free pages get reused)


def test_consumer_drops_duplicates_by_sequence_and_tracks_alerts():
    fleet = Fleet("ferlite")

    def msg(seq, **record):
        return json.dumps({"device": "van-1", "stream": "s1", "seq": seq, "time": 0.0, **record}).encode()
    assert fleet.receive("ferlite/van-1/status", json.dumps({"type": "presence", "state": "online"}).encode())
    assert not fleet.receive("ferlite/van-1/status", msg(1, type="start", mode="driver")).get("duplicate")
    fleet.receive("ferlite/van-1/events", msg(2, type="event", event="alert", phase="start", label="Sad", start=1.0))
    fleet.receive("ferlite/van-1/status", msg(3, type="fps", fps=14.5, faces=1))
    assert fleet.receive("ferlite/van-1/events", msg(2, type="event", event="alert", phase="start"))["duplicate"]
    view = fleet.devices["van-1"]
    assert (view.records, view.duplicates, view.fps, view.faces, view.state) == (3, 1, 14.5, 1, "online")
    assert "alerts alert Sad since t=1.0" in fleet.lines()[0]
    fleet.receive("ferlite/van-1/events", msg(4, type="event", event="alert", phase="end"))
    assert view.open_alerts == {}
    # a new outbox (new stream) starts at 1 again and is not taken for duplicates
    fresh = json.dumps({"device": "van-1", "stream": "s2", "seq": 1, "type": "start"}).encode()
    assert not fleet.receive("ferlite/van-1/status", fresh).get("duplicate")
    assert fleet.receive("other/van-1/status", fresh) is None


@pytest.mark.parametrize("args, code, message", [
    (["--mqtt-ca", "ca.crt"], 2, "--mqtt-ca needs --mqtt URL"),
    (["--device-id", "pi-1"], 2, "--device-id needs --mqtt URL"),
    (["--mqtt-outbox-mb", "2"], 2, "--mqtt-outbox-mb needs --mqtt URL"),
    (["--mqtt", "tcp://broker"], 2, "--mqtt: expected mqtt://host[:port][/prefix] or mqtts://..., got 'tcp://broker'"),
    (["--mqtt", "mqtt://pi-1:secret@broker"], 2, "--mqtt: no credentials in the URL"),
    (["--mqtt", "mqtt://broker", "--device-id", "a/b"], 2, "--device-id: 'a/b' must be 1-64 letters"),
    (["--mqtt", "mqtt://broker", "--mqtt-credentials", "missing.cred"], 3, "--mqtt-credentials: cannot read"),
])
def test_bad_mqtt_flags_are_one_line(args, code, message, faces_dir, model_int8, run_cli, monkeypatch, tmp_path):
    pytest.importorskip("paho.mqtt")
    monkeypatch.chdir(tmp_path)
    r = run_cli("--source", faces_dir / "fer_test.mp4", "--model", model_int8, *args)
    assert r.exit_code == code
    assert r.stderr.startswith(f"error: {message}") and r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == ""          # refused before the camera started


def test_paho_is_imported_only_with_mqtt(faces_dir, model_int8):
    """Without --mqtt paho is never imported; with --mqtt and no paho: one line naming the install, exit 4."""
    run = (f"import sys, runpy; sys.argv = ['run.py', '--source', {str(faces_dir / 'fer_justin.jpg')!r}, "
           f"'--model', {str(model_int8)!r}] + sys.argv[1:]\n"
           "try:\n"
           f"    runpy.run_path({str(RUN_PY)!r}, run_name='__main__')\n"
           "except SystemExit as e:\n"
           "    print('EXIT', e.code, sorted(m for m in sys.modules if m.split('.')[0] == 'paho'))\n")
    p = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, timeout=patient(60))
    assert p.stdout.splitlines()[-1] == "EXIT 0 []", p.stderr
    blocked = "import sys; sys.modules['paho'] = None\n" + run
    p = subprocess.run([sys.executable, "-c", blocked, "--mqtt", "mqtt://127.0.0.1:1"], capture_output=True,
                       text=True, timeout=patient(60))
    assert p.stdout.splitlines()[-1] == "EXIT 4 ['paho']"   # the blocked entry (None) only
    assert p.stderr == "error: --mqtt needs the paho-mqtt package: pip install -r device/requirements-mqtt.txt\n"


def test_an_outbox_that_is_not_one_is_bad_input(faces_dir, model_int8, run_cli, tmp_path):
    pytest.importorskip("paho.mqtt")
    bad = tmp_path / "outbox.sqlite"
    bad.write_text("not a database\n")
    r = run_cli("--source", faces_dir / "fer_justin.jpg", "--model", model_int8, "--mqtt", "mqtt://127.0.0.1:1",
                "--mqtt-outbox", bad)
    assert r.exit_code == 3
    assert r.stderr == f"error: --mqtt-outbox: cannot use {bad} as the outbox: file is not a database\n"
    assert bad.read_text() == "not a database\n"   # left as it was
