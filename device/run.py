"""ferlite on the device: classify facial expressions in live camera frames with an int8 LiteRT model.

    python device/run.py --source picamera2 --mode driver --log drive.jsonl
    python device/run.py --source 0 --mode kiosk --interval 10 --preview
    python device/run.py --source clip.mp4 --model run/model_int8.tflite --save-video out.mp4
    python device/run.py --source photos/ --max-frames 10
    python device/run.py bench --float model_float32.tflite --int8 model_int8.tflite \\
        --faces eval_faces.npz --video clip.mp4 --threads 1,2,4 --json bench.json

Output: JSON Lines on stdout (or --log FILE): a ``start`` record, one ``frame`` record per
processed frame, ``event`` records (driver: absent / alert start and end; kiosk: aggregate),
an ``fps`` record every --fps-every frames, and a ``summary`` record at exit. Nothing else is
written (no frames, crops or video) unless asked for with --save-video; nothing listens on
the network.

Exit codes: 0 done (end of clip or images, --max-frames, SIGINT/SIGTERM, preview closed);
1 failure during the run (camera stopped delivering frames); 2 bad input (model, metadata,
image, video, camera that cannot be opened, options); 3 missing package or display.

Runs as a plain script from a copied ``device/`` folder: needs only numpy, OpenCV (<5),
click and a LiteRT interpreter (ai-edge-litert or tflite-runtime); picamera2 only for
``--source picamera2``.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

if not __package__:  # run as a script: make ``device`` importable from the folder above it
    _here = Path(__file__).resolve().parent
    # The script's own folder would shadow other packages with our module names (log, metrics, ...).
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import click

from device.bench import BenchError, format_table, run_bench
from device.detect import DetectorError, HaarDetector, IoUTracker
from device.interpreter import InterpreterMissing, ModelError, TFLiteClassifier
from device.log import JsonlWriter, dumps, quiet_native_stderr
from device.loop import Loop
from device.metadata import MetadataError
from device.modes import DRIVER_ALERT_LABELS, DriverMonitor, KioskAggregator, NoMode
from device.overlay import PreviewSink, SinkError, VideoSink
from device.sources import SourceError, open_source

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "models" / "default" / "model_int8.tflite"

DETECT_WIDTH, STILLS_DETECT_WIDTH = 320, 640
EXIT_OK, EXIT_RUNTIME, EXIT_INPUT, EXIT_ENV = 0, 1, 2, 3


class Fail(Exception):
    """A clear one-line failure: printed as ``error: ...`` on stderr, then exit with ``code``."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def fail_from(e: BaseException) -> Fail:
    """Map the runtime's own errors to a message and an exit code."""
    if isinstance(e, Fail):
        return e
    if isinstance(e, InterpreterMissing):
        return Fail(str(e), EXIT_ENV)
    if isinstance(e, (ModelError, MetadataError, BenchError, DetectorError)):
        return Fail(str(e), EXIT_INPUT)
    if isinstance(e, SourceError):
        return Fail(str(e), e.exit_code)
    if isinstance(e, SinkError):
        return Fail(str(e), EXIT_ENV if "display" in str(e) or "windows" in str(e) else EXIT_INPUT)
    if isinstance(e, (OSError, ValueError)):
        return Fail(f"{type(e).__name__}: {e}", EXIT_INPUT if isinstance(e, ValueError) else EXIT_RUNTIME)
    return Fail(f"unexpected {type(e).__name__}: {e}", EXIT_RUNTIME)


def guarded(fn):
    """Run ``fn``; turn any failure into one ``error:`` line on stderr and the right exit code."""
    try:
        return fn()
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except KeyboardInterrupt:  # a Ctrl-C before the loop installed its own handler
        raise SystemExit(EXIT_OK)
    except Exception as e:
        if os.environ.get("FERLITE_DEBUG"):
            raise
        f = fail_from(e)
        click.echo(f"error: {f}", err=True)
        sys.exit(f.code)


def resolve_model(model: str | None) -> Path:
    if model:
        return Path(model)
    if not DEFAULT_MODEL.is_file():
        raise Fail(f"no default model at {DEFAULT_MODEL} (not installed yet): pass --model PATH/model_int8.tflite "
                   "(with its metadata.json beside it)", EXIT_INPUT)
    return DEFAULT_MODEL


def parse_size(ctx, param, value):
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
        assert w > 0 and h > 0
    except Exception:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, e.g. 640x480, got {value!r}") from None
    return (w, h)


def parse_labels(ctx, param, value):
    return tuple(s.strip() for s in value.split(",") if s.strip())


def parse_threads(ctx, param, value):
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
        assert out and all(n > 0 for n in out)
    except Exception:
        raise click.BadParameter(f"expected thread counts like 1,2,4, got {value!r}") from None
    return out


class StopFlag(threading.Event):
    """Set by SIGINT / SIGTERM; the loop finishes the current frame, writes its summary and exits 0."""
    reason = None


def install_signal_handlers(stop: StopFlag) -> dict:
    def handler(signum, frame):
        stop.reason = signal.Signals(signum).name
        stop.set()
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)
    return old


def build_mode(mode, labels, absent_after, alert_labels, alert_threshold, alert_after, interval):
    if mode == "driver":
        return DriverMonitor(labels, absent_after=absent_after, alert_labels=alert_labels,
                             alert_threshold=alert_threshold, alert_after=alert_after)
    if mode == "kiosk":
        return KioskAggregator(labels, interval=interval)
    return NoMode()


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--source", help="picamera2 | camera index (0) | video file | image file | folder of images.")
@click.option("--model", help="int8 .tflite with metadata.json beside it [default: device/models/default/model_int8.tflite].")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="LiteRT interpreter threads.")
@click.option("--mode", type=click.Choice(["kiosk", "driver", "none"]), default="kiosk", show_default=True,
              help="driver: the largest face, absent/alert events; kiosk: every face, periodic aggregates.")
@click.option("--detect-every", type=click.IntRange(1), default=3, show_default=True,
              help="Run face detection every N frames; IoU tracking keeps the boxes in between.")
@click.option("--detect-width", type=click.IntRange(0),
              help="Detect faces on a copy of the frame shrunk to this width (0: full size) "
                   "[default: 320; 640 for still images].")
@click.option("--min-face", type=click.IntRange(8), default=40, show_default=True, help="Smallest face, in frame pixels.")
@click.option("--cascade", type=click.Path(dir_okay=False), help="Haar cascade XML [default: OpenCV's frontal face].")
@click.option("--smoothing", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="EMA weight of the newest frame's probabilities (1: no smoothing).")
@click.option("--absent-after", type=click.FloatRange(0.0), default=2.0, show_default=True,
              help="driver: seconds without a face before an 'absent' event.")
@click.option("--alert-labels", default=",".join(DRIVER_ALERT_LABELS), show_default=True, callback=parse_labels,
              help="driver: labels that raise an alert.")
@click.option("--alert-threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="driver: smoothed probability of an alert label that counts.")
@click.option("--alert-after", type=click.FloatRange(0.0), default=3.0, show_default=True,
              help="driver: seconds the alert state must last before an 'alert' event.")
@click.option("--interval", type=click.FloatRange(0.0, min_open=True), default=10.0, show_default=True,
              help="kiosk: seconds per aggregate.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), help="JSON Lines file [default: stdout].")
@click.option("--fps-every", type=click.IntRange(0), default=30, show_default=True,
              help="Write an fps record every N frames (0: never).")
@click.option("--max-frames", type=click.IntRange(1), help="Stop after N frames.")
@click.option("--preview", is_flag=True, help="Show the annotated frames in a window (needs a display).")
@click.option("--save-video", type=click.Path(dir_okay=False), help="Write the annotated frames to OUT.mp4 (mp4v).")
@click.option("--camera-size", default="640x480", show_default=True, callback=parse_size,
              help="Camera frame size (picamera2: the lores/gray stream).")
@click.option("--main-size", default="1280x720", show_default=True, callback=parse_size,
              help="picamera2 main (colour) stream size, used for --preview/--save-video.")
@click.pass_context
def cli(ctx, source, model, threads, mode, detect_every, detect_width, min_face, cascade, smoothing, absent_after,
        alert_labels, alert_threshold, alert_after, interval, log_path, fps_every, max_frames, preview,
        save_video, camera_size, main_size):
    """Classify facial expressions in camera frames, a clip or images (see `bench` for benchmarks)."""
    if ctx.invoked_subcommand is not None:
        return
    if not source:
        raise click.UsageError("give --source (picamera2, a camera index, a video, an image or a folder), "
                               "or a command such as `bench`")

    def main():
        return run_loop(source, model, threads, mode, detect_every, detect_width, min_face, cascade, smoothing,
                        absent_after, alert_labels, alert_threshold, alert_after, interval, log_path, fps_every,
                        max_frames, preview, save_video, camera_size, main_size)
    code = guarded(main)
    sys.exit(code)


def run_loop(source, model, threads, mode, detect_every, detect_width, min_face, cascade, smoothing, absent_after,
             alert_labels, alert_threshold, alert_after, interval, log_path, fps_every, max_frames, preview,
             save_video, camera_size, main_size) -> int:
    # Everything is built here, once, before the loop: model, detector, tracker, mode, source, sinks, log.
    model_path = resolve_model(model)
    with quiet_native_stderr():  # LiteRT's INFO lines; errors still come back as exceptions
        clf = TFLiteClassifier(model_path, threads=threads)
    monitor = build_mode(mode, clf.labels, absent_after, alert_labels, alert_threshold, alert_after, interval)
    preview_sink = PreviewSink() if preview else None
    src = open_source(source, want_image=bool(preview or save_video), camera_size=camera_size, main_size=main_size)
    if detect_width is None:  # stills have no frame rate to keep: detect on more pixels, fewer false faces
        detect_width = STILLS_DETECT_WIDTH if src.stills else DETECT_WIDTH
    try:
        detector = HaarDetector(cascade, detect_width=detect_width, min_size=min_face)
    except BaseException:
        src.close()
        raise
    tracker = IoUTracker(alpha=smoothing)
    video_sink = None
    stop = StopFlag()
    old_handlers = install_signal_handlers(stop)
    error = None
    try:
        video_sink = VideoSink(save_video, src.fps or 15.0) if save_video else None
        with JsonlWriter(log_path) as writer:
            writer.write({"type": "start", "source": src.description, "model": str(model_path),
                          "labels": clf.labels, "quantized": clf.quantized, "threads": threads, "mode": mode,
                          "detect_every": detect_every, "detect_width": detect_width, "min_face": min_face,
                          "smoothing": smoothing,
                          **({"absent_after": absent_after, "alert_labels": list(alert_labels),
                              "alert_threshold": alert_threshold, "alert_after": alert_after} if mode == "driver" else {}),
                          **({"interval": interval} if mode == "kiosk" else {})})
            loop = Loop(src, detector, tracker, clf, monitor, writer, detect_every=detect_every,
                        max_frames=max_frames, fps_every=fps_every, preview=preview_sink, video=video_sink, stop=stop)
            try:
                loop.run()
            except Exception as e:  # the summary (status error) is already in the log
                error = e
            summary = loop.summary
    finally:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        src.close()
        if video_sink is not None:
            video_sink.close()
        if preview_sink is not None:
            preview_sink.close()
    if error is not None:  # the summary (status error) is in the log; stderr gets one error line
        raise error
    if log_path:  # the summary is the log's last line; show it on stdout too
        click.echo(dumps(summary))
    lat = summary["latency_ms"]
    click.echo(f"ferlite: {summary['frames']} frames, {summary['faces']} faces, {summary['tracks']} tracks, "
               f"{summary['fps']:.1f} fps; ms/frame capture {lat['capture']:.2f} detect {lat['detect']:.2f} "
               f"classify {lat['classify']:.2f} ({summary['status']})", err=True)
    return EXIT_OK


@cli.command()
@click.option("--float", "float_path", required=True, type=click.Path(dir_okay=False), help="float32 .tflite")
@click.option("--int8", "int8_path", required=True, type=click.Path(dir_okay=False), help="int8 .tflite")
@click.option("--faces", "faces_path", required=True, type=click.Path(dir_okay=False),
              help="eval_faces.npz: faces uint8 (N,48,48), labels, split, label_names.")
@click.option("--video", type=click.Path(dir_okay=False), help="Clip for end-to-end loop fps.")
@click.option("--threads", default="1", show_default=True, callback=parse_threads, help="Thread counts, e.g. 1,2,4.")
@click.option("--runs", type=click.IntRange(1), default=200, show_default=True, help="Timed batch-1 calls.")
@click.option("--warmup", type=click.IntRange(0), default=20, show_default=True, help="Untimed calls first.")
@click.option("--detect-every", type=click.IntRange(1), default=3, show_default=True, help="Loop: detect every N frames.")
@click.option("--max-frames", type=click.IntRange(1), help="Loop: at most N frames of the clip.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results as JSON here.")
def bench(float_path, int8_path, faces_path, video, threads, runs, warmup, detect_every, max_frames, json_path):
    """int8 vs float32: accuracy, drop, agreement, latency per thread count, loop fps on a clip."""
    def main():
        if video and not Path(video).is_file():
            raise Fail(f"video not found: {video}", EXIT_INPUT)
        result = run_bench(float_path, int8_path, faces_path, video=video, threads=threads, warmup=warmup,
                           runs=runs, detect_every=detect_every, max_frames=max_frames,
                           log=lambda s: click.echo(s, err=True))
        click.echo(format_table(result))
        if json_path:
            from device.atomic import write_json
            write_json(json_path, result)
            click.echo(f"wrote {json_path}", err=True)
        return EXIT_OK
    sys.exit(guarded(main))


if __name__ == "__main__":
    cli(prog_name="run.py")
