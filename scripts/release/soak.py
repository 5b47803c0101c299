"""The device loop for a long time: does anything leak or slow down? (a benchmark, not a test)

    python scripts/release/soak.py [--minutes 60] [--clip ../shared/data/faces/fer_test.mp4] [--out runs/soak]

Runs ``device/run.py --source CLIP --loop`` (the shipped default model and detector, kiosk mode,
the JSONL log rotated by --log-max-mb) as a process of its own for --minutes, and every --every
seconds records what that process held (read from /proc every second, the highest of the
interval kept): resident memory (RSS), open file descriptors, threads; its CPU time, and from its
log the frames done (-> fps over the interval). Writes
OUT/soak.csv (one row per sample), OUT/soak.png and OUT/soak.json (the figures, the verdict, the
command, machine and date). After --warmup it fails (exit 5, the quality-gate code) when

- RSS grows by more than --max-rss-mb-per-hour (least-squares slope over the samples),
- open file descriptors or threads grow (the lowest of the last 3 samples above the highest of the first 3),
- fps drifts by more than --max-fps-drift (median of the last tenth of the samples against the first tenth),
- or the loop ends before the SIGTERM the soak sends it at the end, or not cleanly after it.

fps depends on whatever else the machine does: run it on an otherwise idle device for figures
that mean something (the CPU time per frame it also reports is less disturbed by other work).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import numpy as np  # noqa: E402

from device.atomic import write_json  # noqa: E402
from device.paths import portable_record  # noqa: E402
from device.errors import GateFailed, RunFailed, exit_with, run_click  # noqa: E402
from device.log import dumps  # noqa: E402
from device.paths import shared_data  # noqa: E402
from device.provenance import machine_info, now_iso, record  # noqa: E402

RUN_PY = ROOT / "device" / "run.py"
DEFAULT_CLIP = shared_data("faces", "fer_test.mp4")
CLK_TCK = os.sysconf("SC_CLK_TCK")
COLUMNS = ("t_s", "rss_mb", "fds", "threads", "frames", "fps", "cpu_s", "load1")
EDGE = 3  # samples compared at each end for fds and threads
SUB_S = 1.0  # /proc is read this often; a sample holds the highest values of its interval


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 60.0
    clip: str = str(DEFAULT_CLIP)
    out: str = "runs/soak"
    every: float = 10.0                  # seconds between samples
    warmup: float = 300.0                # seconds left out of the verdict (model load, caches, allocator)
    max_rss_mb_per_hour: float = 5.0
    max_fps_drift: float = 0.10
    log_max_mb: float = 10.0             # the loop's own log, rotated: an hour of frame records is ~100 MB
    mode: str = "kiosk"
    max_fps: float | None = None         # run.py --max-fps: a camera's pace instead of flat out
    nice: int = 0                        # the loop's priority (negative: ahead of other work; needs root)


# -- the loop under test ----------------------------------------------------------------------

def loop_command(opts: SoakOptions, log: Path) -> list[str]:
    return [sys.executable, str(RUN_PY), "--source", opts.clip, "--loop", "--mode", opts.mode,
            "--log", str(log), "--log-max-mb", str(opts.log_max_mb), "--log-keep", "1"] + \
        (["--max-fps", str(opts.max_fps)] if opts.max_fps else [])


def proc_sample(pid: int) -> dict:
    """What the process holds now, from /proc (Linux; a Pi too)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "cpu_s": (int(stat[11]) + int(stat[12])) / CLK_TCK}


class LogTail:
    """Follows the loop's log across rotations and keeps the last frame number it logged."""
    MARK = '{"type":"frame","frame":'

    def __init__(self, path: Path):
        self.path, self.f, self.ident, self.last_frame = path, None, None, -1

    def frames(self) -> int:
        self._read()
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self.last_frame + 1
        if (st.st_dev, st.st_ino) != self.ident:  # rotated: finish the old file, then follow the new one
            self._read()
            if self.f:
                self.f.close()
            self.f, self.ident = open(self.path, encoding="utf-8"), (st.st_dev, st.st_ino)
            self._read()
        return self.last_frame + 1

    def _read(self) -> None:
        if self.f is None:
            return
        chunk = self.f.read()
        k = chunk.rfind(self.MARK)
        if k >= 0:
            end = chunk.find(",", k + len(self.MARK))
            if end > 0:
                self.last_frame = int(chunk[k + len(self.MARK):end])

    def close(self) -> None:
        if self.f:
            self.f.close()


def interval_sample(pid: int, until: float) -> dict | None:
    """The process read every SUB_S seconds until ``until``: the highest RSS, fds and threads seen,
    the last CPU time. RSS saws up and down with each play of the clip (the decoder is made anew)
    and the decoder's threads come and go: the highest of many reads is steady where one read is not."""
    seen = []
    while True:
        try:
            seen.append(proc_sample(pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        if time.monotonic() >= until:
            break
        time.sleep(max(0.0, min(SUB_S, until - time.monotonic())))
    if not seen:
        return None
    return {"rss_mb": round(max(s["rss_mb"] for s in seen), 2), "fds": max(s["fds"] for s in seen),
            "threads": max(s["threads"] for s in seen), "cpu_s": seen[-1]["cpu_s"]}


def sample_loop(proc: subprocess.Popen, tail: LogTail, opts: SoakOptions, say) -> list[dict]:
    """One row every ``opts.every`` seconds until ``opts.minutes`` are up (or the loop dies)."""
    rows, t0 = [], time.monotonic()
    last_t, last_frames = 0.0, 0
    end = t0 + opts.minutes * 60
    while True:
        held = interval_sample(proc.pid, min(t0 + (len(rows) + 1) * opts.every, end))
        if proc.poll() is not None or held is None:
            say(f"soak: the loop ended by itself (exit {proc.poll()}) after {time.monotonic() - t0:.0f} s")
            break
        now = time.monotonic() - t0
        frames = tail.frames()
        row = {"t_s": round(now, 1), **held}
        row.update(frames=frames, fps=round((frames - last_frames) / max(now - last_t, 1e-9), 2),
                   load1=float(Path("/proc/loadavg").read_text().split()[0]))
        rows.append(row)
        last_t, last_frames = now, frames
        if len(rows) % max(1, int(60 / opts.every)) == 0:
            say(f"soak: {now / 60:5.1f} min  rss {row['rss_mb']:.1f} MB  fds {row['fds']}  threads {row['threads']}  "
                f"fps {row['fps']:.1f}  frames {frames}")
        if time.monotonic() >= end:
            break
    return rows


def stop_loop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# -- the verdict -----------------------------------------------------------------------------

def judge(rows: list[dict], opts: SoakOptions, loop_ok: bool) -> dict:
    """The figures after warm-up and whether each limit held."""
    after = [r for r in rows if r["t_s"] >= opts.warmup]
    if len(after) < 2 * EDGE:
        return {"passed": False, "failures": [f"too short to judge: {len(after)} samples after the "
                                              f"{opts.warmup:g} s warm-up (need {2 * EDGE})"]}
    hours = np.array([r["t_s"] for r in after]) / 3600
    rss = np.array([r["rss_mb"] for r in after])
    slope = float(np.polyfit(hours, rss, 1)[0])
    tenth = max(EDGE, len(after) // 10)
    fps_start = statistics.median(r["fps"] for r in after[:tenth])
    fps_end = statistics.median(r["fps"] for r in after[-tenth:])
    drift = (fps_end - fps_start) / fps_start if fps_start else float("inf")
    grew = {k: min(r[k] for r in after[-EDGE:]) > max(r[k] for r in after[:EDGE]) for k in ("fds", "threads")}
    failures = []
    if slope > opts.max_rss_mb_per_hour:
        failures.append(f"RSS grows {slope:.2f} MB/hour (limit {opts.max_rss_mb_per_hour:g})")
    failures += [f"{k} grew from {after[0][k]} to {after[-1][k]}" for k, g in grew.items() if g]
    if abs(drift) > opts.max_fps_drift:
        failures.append(f"fps drifted {100 * drift:+.1f}% ({fps_start:.1f} -> {fps_end:.1f}; "
                        f"limit {100 * opts.max_fps_drift:g}%)")
    if not loop_ok:
        failures.append("the loop did not run to the end and stop cleanly on SIGTERM")
    cpu_per_frame = (after[-1]["cpu_s"] - after[0]["cpu_s"]) / max(after[-1]["frames"] - after[0]["frames"], 1)
    return {"passed": not failures, "failures": failures, "samples_judged": len(after),
            "rss_mb_first": rows[0]["rss_mb"], "rss_mb_after_warmup": after[0]["rss_mb"], "rss_mb_end": after[-1]["rss_mb"],
            "rss_mb_per_hour": round(slope, 3), "fds": [after[0]["fds"], after[-1]["fds"]],
            "threads": [after[0]["threads"], after[-1]["threads"]], "fps_start": fps_start, "fps_end": fps_end,
            "fps_drift_pct": round(100 * drift, 2), "cpu_ms_per_frame": round(1000 * cpu_per_frame, 2),
            "load1_median": statistics.median(r["load1"] for r in after)}


# -- outputs -------------------------------------------------------------------------------------

def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)


def plot(rows: list[dict], verdict: dict, opts: SoakOptions, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    axes[0].plot(minutes, [r["rss_mb"] for r in rows], color="C0")
    axes[0].set_ylabel("RSS (MB)")
    axes[0].set_title(f"soak: {'passed' if verdict['passed'] else 'FAILED'}; RSS "
                      f"{verdict.get('rss_mb_per_hour', float('nan')):+.2f} MB/h after warm-up, "
                      f"fps drift {verdict.get('fps_drift_pct', float('nan')):+.1f}%", fontsize=10)
    axes[1].plot(minutes, [r["fds"] for r in rows], label="open fds", color="C1")
    axes[1].plot(minutes, [r["threads"] for r in rows], label="threads", color="C2", linestyle="--")
    axes[1].set_ylabel("count")
    axes[2].plot(minutes, [r["fps"] for r in rows], color="C3")
    axes[2].set_ylabel(f"fps (per {opts.every:g} s)")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.axvspan(0, opts.warmup / 60, color="0.9", zorder=0, label="warm-up (not judged)")
        ax.grid(alpha=0.3)
    axes[1].legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- the command ------------------------------------------------------------------------------

def run_soak(opts: SoakOptions, argv: list[str], say=lambda s: click.echo(s, err=True)) -> dict:
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "loop.jsonl"
    cmd = loop_command(opts, log)
    say(f"soak: {' '.join(cmd)} for {opts.minutes:g} min, a sample every {opts.every:g} s")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(out / "loop.stdout", "w") as so, open(out / "loop.stderr", "w") as se:
        nice = (lambda: os.setpriority(os.PRIO_PROCESS, 0, opts.nice)) if opts.nice else None
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env, cwd=ROOT, preexec_fn=nice)
    tail = LogTail(log)
    try:
        rows = sample_loop(proc, tail, opts, say)
        ended_early = proc.poll() is not None
    finally:
        code = stop_loop(proc)
        tail.close()
    summary = last_summary(out / "loop.stdout")
    loop_ok = not ended_early and code == 0 and summary.get("status") == "SIGTERM"
    verdict = judge(rows, opts, loop_ok)
    write_csv(rows, out / "soak.csv")
    plotted = plot(rows, verdict, opts, out / "soak.png") if rows else False
    result = {"verdict": verdict, "duration_s": rows[-1]["t_s"] if rows else 0.0,
              "frames": summary.get("frames"), "loop_exit": code, "loop_summary": summary,
              "options": asdict(opts), "loop_command": cmd, "plot": plotted,
              "machine": machine_info(), "date": now_iso(), "provenance": record("scripts/release/soak.py", argv)}
    write_json(out / "soak.json", portable_record(result))  # committed in docs/soak: no machine paths (device/paths.py)
    return result


def last_summary(stdout: Path) -> dict:
    """run.py prints the summary record on stdout too when it logs to a file."""
    for line in reversed(stdout.read_text().splitlines()):
        if line.startswith('{"type":"summary"'):
            return json.loads(line)
    return {}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--minutes", type=click.FloatRange(0.1), default=SoakOptions.minutes, show_default=True)
@click.option("--clip", type=click.Path(exists=True, dir_okay=False), default=SoakOptions.clip, show_default=True)
@click.option("--out", default=SoakOptions.out, show_default=True, help="Folder for soak.csv, soak.png, soak.json.")
@click.option("--every", type=click.FloatRange(1.0), default=SoakOptions.every, show_default=True,
              help="Seconds between samples.")
@click.option("--warmup", type=click.FloatRange(0.0), default=SoakOptions.warmup, show_default=True,
              help="Seconds at the start left out of the verdict.")
@click.option("--max-rss-mb-per-hour", type=click.FloatRange(0.0), default=SoakOptions.max_rss_mb_per_hour,
              show_default=True)
@click.option("--max-fps-drift", type=click.FloatRange(0.0), default=SoakOptions.max_fps_drift, show_default=True,
              help="Largest relative change of fps, start to end.")
@click.option("--log-max-mb", type=click.FloatRange(0.01), default=SoakOptions.log_max_mb, show_default=True,
              help="The loop's log is rotated at this size (one old file kept).")
@click.option("--mode", type=click.Choice(["kiosk", "driver", "none"]), default=SoakOptions.mode, show_default=True)
@click.option("--max-fps", type=click.FloatRange(0, min_open=True), default=None,
              help="Pace the loop like a camera (run.py --max-fps); fps drift is then judged at that pace.")
@click.option("--nice", type=click.IntRange(-20, 19), default=SoakOptions.nice, show_default=True,
              help="The loop's nice value: negative keeps its pace on a machine that also trains (root).")
@click.pass_context
def main(ctx, **options):
    """Run the device loop on a looped clip for a long time; fail on leaks or a slowing loop."""
    opts = SoakOptions(**options)
    if opts.nice < 0 and os.geteuid() != 0:
        raise click.UsageError("--nice below 0 needs root")
    result = run_soak(opts, ctx.obj)
    v = result["verdict"]
    click.echo(dumps({k: v.get(k) for k in ("passed", "rss_mb_first", "rss_mb_after_warmup", "rss_mb_end",
                                              "rss_mb_per_hour", "fds", "threads", "fps_start", "fps_end",
                                              "fps_drift_pct", "cpu_ms_per_frame")}
                     | {"duration_s": result["duration_s"], "frames": result["frames"]}))
    click.echo(f"wrote {Path(opts.out) / 'soak.json'}, soak.csv{', soak.png' if result['plot'] else ''}", err=True)
    if result["loop_exit"] not in (0, None) and not result["frames"]:
        raise RunFailed(f"the loop failed (exit {result['loop_exit']}): see {Path(opts.out) / 'loop.stderr'}")
    if not v["passed"]:
        raise GateFailed("soak failed: " + "; ".join(v["failures"]))


if __name__ == "__main__":
    exit_with(run_click(main, prog_name="scripts/release/soak.py"))
