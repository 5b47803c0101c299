"""What fleet telemetry costs (a benchmark, not a timed test).

    python scripts/release/bench_mqtt.py [--video ../shared/data/faces/fer_test.mp4] [--repeats 5] [--json bench_mqtt.json]

1. Loop fps on the clip, as ``device/run.py --source CLIP --log FILE`` runs it, without --mqtt,
   with --mqtt, and with --mqtt --mqtt-frames (every frame published), in alternating order
   (--repeats rounds; the medians are reported), against a throwaway mosquitto on 127.0.0.1
   (or --mqtt URL, anonymous). Also the process's CPU time per frame while the loop runs (all
   threads, the publisher's included; model loading and start-up left out): less disturbed
   than fps by other work on the machine.
2. The outbox for 24 hours of kiosk aggregates (one per 10 s: 8,640 records from the real
   KioskAggregator), alone and with the fps records a 15 fps camera adds at --fps-every 30,
   stored as the publisher stores them while the broker is unreachable (in small batches):
   bytes on disk (file + write-ahead log), whether the default bound held it all, seconds to
   store, seconds to replay the whole backlog to the broker.
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import click  # noqa: E402
import numpy as np  # noqa: E402

from device.atomic import write_json  # noqa: E402
from device.contract import LABELS  # noqa: E402
from device.detect import DEFAULT_DETECTOR  # noqa: E402
from device.modes import KioskAggregator  # noqa: E402
from device.paths import shared_data  # noqa: E402
from device.provenance import record  # noqa: E402
from device.loop import Loop  # noqa: E402
from device.run import RunOptions, run_loop  # noqa: E402
from device.telemetry.config import DEFAULT_OUTBOX_MB, make_config  # noqa: E402
from device.telemetry.outbox import Outbox  # noqa: E402
from device.telemetry.publisher import Publisher  # noqa: E402

DAY_S = 24 * 3600
STORE_BATCH = 50   # records per outbox transaction (the publisher stores what arrived in one turn)
KIOSK_INTERVAL_S, CAMERA_FPS, FPS_EVERY = 10.0, 15.0, 30   # the kiosk defaults on a 15 fps camera
VARIANTS = {"off": {}, "mqtt": {"frames": False}, "mqtt+frames": {"frames": True}}


def start_broker(folder: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"mqtt://127.0.0.1:{port}/bench"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("error: mosquitto did not start (scripts/setup_mosquitto.sh installs it)")


def timed_loop_run(run):
    """Loop.run, also storing the process's CPU seconds (every thread) it took on the loop."""
    def wrapper(self):
        cpu = time.process_time()
        try:
            return run(self)
        finally:
            self.cpu_s = time.process_time() - cpu
            LOOP_CPU.append(self.cpu_s)
    return wrapper


LOOP_CPU: list[float] = []
Loop.run = timed_loop_run(Loop.run)


def loop_fps(video: str, folder: Path, url: str, variant: str, i: int, detector: str | None) -> dict:
    mqtt = None
    if variant != "off":
        mqtt = make_config(url, None, None, f"bench-{i}", str(folder / f"outbox-{variant}-{i}.sqlite"),
                           frames=VARIANTS[variant]["frames"])
    opts = RunOptions(source=video, mode="kiosk", detector=detector, log_path=str(folder / f"{variant}-{i}.jsonl"),
                      mqtt=mqtt)
    s = run_loop(opts)
    cpu_ms = 1000 * LOOP_CPU[-1] / s["frames"]
    return {"fps": s["fps"], "output_ms": s["latency_ms"]["output"], "cpu_ms": cpu_ms,
            "sent": (s.get("mqtt") or {}).get("sent")}


def aggregates(n: int, seed: int = 0) -> list[dict]:
    """``n`` real kiosk aggregate records (KioskAggregator fed random faces), as the loop logs them."""
    rng = np.random.default_rng(seed)
    agg = KioskAggregator(LABELS, interval=KIOSK_INTERVAL_S)
    out, t, frame = [], 0.0, 0
    while len(out) < n:
        probs = rng.dirichlet(np.ones(len(LABELS)))
        faces = [{"track": int(rng.integers(1, 50)), "box": [0, 0, 60, 60], "probs": probs}]
        for ev in agg.update(t, faces):
            out.append({"type": "event", "frame": frame, **ev})
        t += 1.0  # one frame a second is enough to fill a window: the record's size does not depend on it
        frame += 1
    return out


def fps_records(n: int) -> list[dict]:
    return [{"type": "fps", "frame": (i + 1) * FPS_EVERY - 1, "t": round((i + 1) * FPS_EVERY / CAMERA_FPS, 3),
             "fps": 14.97, "faces": 2} for i in range(n)]


def outbox_day(folder: Path, url: str, name: str, records: list[tuple[str, dict]]) -> dict:
    path = folder / f"{name}.sqlite"
    box = Outbox(path, "kiosk-1", int(DEFAULT_OUTBOX_MB * 1_000_000))
    t0 = time.perf_counter()
    dropped = sum(box.add((kind, rec, float(i + j)) for j, (kind, rec) in enumerate(records[i:i + STORE_BATCH]))
                  for i in range(0, len(records), STORE_BATCH))
    store_s = time.perf_counter() - t0
    kept = box.count()
    payload = int(box.db.execute("SELECT SUM(length(payload)) FROM outbox").fetchone()[0])
    size = sum(p.stat().st_size for p in folder.glob(f"{name}.sqlite*"))  # the file and its write-ahead log
    box.close()
    pub = Publisher(make_config(url, None, None, "kiosk-1", str(path)), say=lambda s: None).start()
    t0 = time.perf_counter()
    while pub.pending and time.perf_counter() - t0 < 600:
        time.sleep(0.05)
    replay_s = time.perf_counter() - t0
    left = pub.close()["pending"]
    return {"records": len(records), "kept": kept, "dropped": dropped, "payload_bytes": payload,
            "file_bytes": size, "bound_mb": DEFAULT_OUTBOX_MB, "store_s": round(store_s, 2),
            "replay_s": round(replay_s, 2), "left_after_replay": left}


@click.command()
@click.option("--video", type=click.Path(exists=True, dir_okay=False),
              default=str(shared_data("faces", "fer_test.mp4")), show_default=True)
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
@click.option("--detector", help="The loop's face detector [default: device/run.py's].")
@click.option("--mqtt", "url", help="An anonymous broker to use [default: a throwaway mosquitto on 127.0.0.1].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the figures here, with provenance.")
def main(video, repeats, detector, url, json_path):
    with tempfile.TemporaryDirectory(prefix="bench_mqtt_") as tmp:
        folder = Path(tmp)
        proc = None
        if not url:
            proc, url = start_broker(folder)
        try:
            runs = {v: [] for v in VARIANTS}
            for i in range(repeats):
                order = list(VARIANTS) if i % 2 == 0 else list(VARIANTS)[::-1]
                for v in order:
                    runs[v].append(loop_fps(video, folder, url, v, i, detector))
            n_agg = int(DAY_S / KIOSK_INTERVAL_S)
            aggs = [("aggregate", r) for r in aggregates(n_agg)]
            fps = [("status", r) for r in fps_records(int(DAY_S * CAMERA_FPS / FPS_EVERY))]
            mixed = sorted(aggs + fps, key=lambda kr: kr[1].get("end", kr[1].get("t")))  # in time order
            day = {"aggregates": outbox_day(folder, url, "aggregates", aggs),
                   "aggregates+fps": outbox_day(folder, url, "mixed", mixed)}
        finally:
            if proc:
                proc.terminate()
                proc.wait()
    base = statistics.median(r["fps"] for r in runs["off"])
    loop = {v: {"fps_median": statistics.median(r["fps"] for r in rs), "fps_runs": [r["fps"] for r in rs],
                "output_ms_median": statistics.median(r["output_ms"] for r in rs),
                "cpu_ms_per_frame_median": round(statistics.median(r["cpu_ms"] for r in rs), 2),
                "vs_off_pct": round(100 * (statistics.median(r["fps"] for r in rs) / base - 1), 1)}
            for v, rs in runs.items()}
    for v, r in loop.items():
        click.echo(f"loop {v:<12} fps median {r['fps_median']:7.2f}  ({r['vs_off_pct']:+5.1f}% vs off)  "
                   f"output {r['output_ms_median']:.3f} ms/frame  CPU {r['cpu_ms_per_frame_median']:.2f} ms/frame  "
                   f"runs {r['fps_runs']}")
    for name, d in day.items():
        click.echo(f"outbox 24 h {name:<15} {d['records']:6d} records, {d['kept']:6d} kept, {d['dropped']} dropped, "
                   f"{d['file_bytes'] / 1e6:.2f} MB on disk ({d['payload_bytes'] / 1e6:.2f} MB payload, bound "
                   f"{d['bound_mb']:g} MB), stored in {d['store_s']} s, replayed in {d['replay_s']} s")
    if json_path:
        write_json(json_path, {"loop": loop, "outbox_24h": day, "video": video, "detector": detector or DEFAULT_DETECTOR,
                               "provenance": record("scripts/release/bench_mqtt.py")})
        click.echo(f"wrote {json_path}", err=True)


if __name__ == "__main__":
    main()
