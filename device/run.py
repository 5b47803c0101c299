"""ferlite on the device: classify facial expressions in live camera frames with an int8 LiteRT model.

    python device/run.py --source picamera2 --mode driver --log drive.jsonl
    python device/run.py --source 0 --mode kiosk --interval 10 --preview
    python device/run.py --source clip.mp4 --model run/model_int8.tflite --save-video out.mp4
    python device/run.py --source photos/ --max-frames 10
    python device/run.py bench --float model_float32.tflite --int8 model_int8.tflite \\
        --faces eval_faces.npz --video clip.mp4 --threads 1,2,4 --json bench.json
    python device/run.py bench --int8 device/models/default/model_int8.tflite --video clip.mp4
    python device/run.py fetch-models   # BlazeFace's model files, when they are missing

Output: JSON Lines on stdout (or --log FILE): a ``start`` record, one ``frame`` record per
processed frame, ``event`` records (driver: absent / alert start and end; kiosk: aggregate),
an ``fps`` record every --fps-every frames, and a ``summary`` record at exit. Nothing else is
written (no frames, crops or video) unless asked for with --save-video; nothing listens on
the network. With --mqtt URL the events, aggregates, fps and summary also go to an MQTT broker
(device/telemetry/; needs device/requirements-mqtt.txt).

Exit codes: the one table in ``device/errors.py`` (README, "Exit codes"). SIGINT/SIGTERM and a
closed preview end the loop normally: summary written, exit 0.

Runs as a plain script from a copied ``device/`` folder: needs only numpy, OpenCV (<5),
click and a LiteRT interpreter (ai-edge-litert or tflite-runtime); picamera2 only for
``--source picamera2``.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script: make ``device`` importable from the folder above it
    _here = Path(__file__).resolve().parent
    # The script's own folder would shadow other packages with our module names (log, metrics, ...).
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import click

from device.atomic import write_json
from device.bench import format_header, format_table, run_bench
from device.detect import DEFAULT_DETECTOR, DETECTORS, STILLS_DETECTOR, IoUTracker, make_detector
from device.errors import InputError, UsageError, exit_with, run_click
from device.fetch import cli as fetch_models
from device.interpreter import TFLiteClassifier
from device.log import DEFAULT_KEEP, JsonlWriter, dumps, is_stdout
from device.stderr import quiet_native_stderr
from device.loop import Loop
from device.modes import DRIVER_ALERT_LABELS, DriverMonitor, KioskAggregator, NoMode
from device.overlay import PreviewSink, VideoSink
from device.paths import portable_record
from device.provenance import record
from device.signals import stop_on_signals
from device.sources import Source, open_source
from device.telemetry.config import MqttConfig
from device.telemetry.options import mqtt_options, pop_mqtt_config

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE / "models"  # one folder per shipped model pair; --model takes its name
DEFAULT_MODEL = MODELS_DIR / "default" / "model_int8.tflite"
BENCH_PROG = "python device/run.py bench"  # the program name bench.json records in front of the arguments

DETECT_WIDTH, STILLS_DETECT_WIDTH = 320, 640
# The options each mode reads, in the order the ``start`` record lists them.
MODE_OPTIONS = {"driver": ("absent_after", "alert_labels", "alert_threshold", "alert_after"), "kiosk": ("interval",)}


@dataclass(frozen=True)
class RunOptions:
    """Everything the camera loop is told, parsed once at the command line (the defaults live here)."""
    source: str
    model: str | None = None                 # None: the shipped default model
    threads: int = 1
    mode: str = "kiosk"                      # kiosk | driver | none
    detect_every: int = 3
    detect_width: int | None = None          # None: DETECT_WIDTH, STILLS_DETECT_WIDTH for still images
    min_face: int = 40
    cascade: str | None = None
    detector: str | None = None              # haar | blazeface | blazeface-full; None: DEFAULT_DETECTOR,
                                             # STILLS_DETECTOR for still images (device/detect.py)
    smoothing: float = 0.5
    absent_after: float = 2.0
    alert_labels: tuple[str, ...] = DRIVER_ALERT_LABELS
    alert_threshold: float = 0.5
    alert_after: float = 3.0
    interval: float = 10.0
    log_path: str | None = None              # None: stdout
    log_max_mb: float | None = None          # rotate the log at this size (None: never)
    log_keep: int = DEFAULT_KEEP             # rotated files kept
    loop: bool = False                       # play a clip or images again and again (scripts/release/soak.py)
    fps_every: int = 30
    max_frames: int | None = None
    max_fps: float | None = None             # None: as fast as frames come (device/pace.py)
    preview: bool = False
    save_video: str | None = None
    camera_size: tuple[int, int] = (640, 480)
    main_size: tuple[int, int] = (1280, 720)
    mqtt: MqttConfig | None = None           # --mqtt: fleet telemetry (device/telemetry/)

    @property
    def wants_image(self) -> bool:
        """Whether frames need their colour image (only to be shown or saved)."""
        return self.preview or bool(self.save_video)


def shipped_models() -> list[str]:
    """The short names --model takes: folders of device/models/ holding a model pair (default, ferplus)."""
    return sorted(d.name for d in MODELS_DIR.iterdir() if (d / DEFAULT_MODEL.name).is_file()) if MODELS_DIR.is_dir() else []


def resolve_model(model: str | None) -> Path:
    """--model: a path, or the short name of a shipped model; None: the default."""
    if model is None:
        if not DEFAULT_MODEL.is_file():
            raise InputError(f"no default model at {DEFAULT_MODEL} (not installed yet): pass --model "
                             "PATH/model_int8.tflite (with its metadata.json beside it)")
        return DEFAULT_MODEL
    path, named = Path(model), MODELS_DIR / model / DEFAULT_MODEL.name
    if path.exists() or path.suffix or "/" in model or os.sep in model:
        return path  # a path: the classifier names what is wrong with it
    if named.is_file():
        return named
    raise InputError(f"--model {model}: no such file, and no shipped model of that name "
                     f"(shipped: {', '.join(shipped_models()) or 'none'})")


def parse_size(ctx, param, value):
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
        assert w > 0 and h > 0
    except Exception:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, e.g. 640x480, got {value!r}") from None
    return (w, h)


def size_text(size: tuple[int, int]) -> str:
    return "x".join(map(str, size))


def parse_labels(ctx, param, value):
    return tuple(s.strip() for s in value.split(",") if s.strip())


def parse_threads(ctx, param, value):
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
        assert out and all(n > 0 for n in out)
    except Exception:
        raise click.BadParameter(f"expected thread counts like 1,2,4, got {value!r}") from None
    return out


def load_classifier(opts: RunOptions) -> tuple[TFLiteClassifier, Path]:
    path = resolve_model(opts.model)
    with quiet_native_stderr():  # LiteRT's INFO lines; errors still come back as exceptions
        return TFLiteClassifier(path, threads=opts.threads), path


def build_mode(opts: RunOptions, labels):
    if opts.mode == "driver":
        try:
            return DriverMonitor(labels, absent_after=opts.absent_after, alert_labels=opts.alert_labels,
                                 alert_threshold=opts.alert_threshold, alert_after=opts.alert_after)
        except ValueError as e:  # alert labels the model does not have
            raise UsageError(f"--alert-labels: {e}") from None
    if opts.mode == "kiosk":
        return KioskAggregator(labels, interval=opts.interval)
    return NoMode()


def detect_width(opts: RunOptions, src: Source) -> int:
    if opts.detect_width is not None:
        return opts.detect_width
    # Stills have no frame rate to keep: detect on more pixels, fewer false faces.
    return STILLS_DETECT_WIDTH if src.stills else DETECT_WIDTH


def detector_name(opts: RunOptions, src: Source) -> str:
    return opts.detector or (STILLS_DETECTOR if src.stills else DEFAULT_DETECTOR)


def start_record(opts: RunOptions, src: Source, clf: TFLiteClassifier, model_path: Path, width: int,
                 detector: str) -> dict:
    return {"type": "start", "source": src.description, "model": str(model_path), "labels": clf.labels,
            "quantized": clf.quantized, "threads": opts.threads, "mode": opts.mode, "detector": detector,
            "detect_every": opts.detect_every, "detect_width": width if detector == "haar" else None,
            "min_face": opts.min_face,
            "smoothing": opts.smoothing, **{k: getattr(opts, k) for k in MODE_OPTIONS.get(opts.mode, ())},
            **({"loop": True} if opts.loop else {})}


def run_loop(opts: RunOptions) -> dict:
    """Build everything once (model, mode, sinks, source, detector, log), run the loop, close it all.

    Returns the summary. A failure inside the loop still ends the log with its summary (status
    ``error``), then propagates as one of ``device.errors``' types."""
    with contextlib.ExitStack() as stack:
        clf, model_path = load_classifier(opts)
        monitor = build_mode(opts, clf.labels)
        preview = stack.enter_context(contextlib.closing(PreviewSink())) if opts.preview else None
        src = stack.enter_context(open_source(opts.source, want_image=opts.wants_image,
                                              camera_size=opts.camera_size, main_size=opts.main_size,
                                              loop=opts.loop))
        width = detect_width(opts, src)
        name = detector_name(opts, src)
        detector = make_detector(name, detect_width=width, min_size=opts.min_face, cascade=opts.cascade,
                                 threads=opts.threads)  # a missing BlazeFace model names its fetch command
        stop = stack.enter_context(stop_on_signals())
        video = stack.enter_context(contextlib.closing(VideoSink(opts.save_video, src.fps or 15.0))) \
            if opts.save_video else None
        writer = stack.enter_context(JsonlWriter(opts.log_path, max_mb=opts.log_max_mb, keep=opts.log_keep))
        if opts.mqtt:  # the same records, teed to a publishing thread; paho is imported only here
            from device.telemetry.tee import TelemetryWriter
            writer = stack.enter_context(TelemetryWriter(writer, opts.mqtt))
        writer.write(start_record(opts, src, clf, model_path, width, name))
        loop = Loop(src, detector, IoUTracker(alpha=opts.smoothing), clf, monitor, writer,
                    detect_every=opts.detect_every, max_frames=opts.max_frames, fps_every=opts.fps_every,
                    preview=preview, video=video, stop=stop, max_fps=opts.max_fps)
        return loop.run()


def print_summary(summary: dict, log_path: str | None) -> None:
    if log_path and not is_stdout(log_path):  # the summary is the log's last line; show it on stdout too
        click.echo(dumps(summary))
    lat = summary["latency_ms"]
    skipped = f", {summary['skipped']} unreadable images skipped" if summary.get("skipped") else ""
    log = summary.get("log") or {}
    lost = f"; log: {log['dropped']} records could not be written" if log.get("dropped") else ""
    click.echo(f"ferlite: {summary['frames']} frames, {summary['faces']} faces, {summary['tracks']} tracks{skipped}, "
               f"{summary['fps']:.1f} fps; ms/frame capture {lat['capture']:.2f} detect {lat['detect']:.2f} "
               f"classify {lat['classify']:.2f} ({summary['status']}){lost}", err=True)


DEFAULTS = RunOptions  # the command line's defaults are RunOptions' own (class attributes)
DETECTOR_HELP = ("Face detector: blazeface (MediaPipe, faces within ~2 m), blazeface-full (~5 m), haar (OpenCV "
                 f"cascade, small far faces) [default: {DEFAULT_DETECTOR}; {STILLS_DETECTOR} for still images]. "
                 "BlazeFace models: python device/run.py fetch-models.")


def detector_option(**kw):
    """``--detector``, the loop's and bench's alike: the choices and default of device/detect.py, one help text."""
    return click.option("--detector", type=click.Choice(DETECTORS), help=DETECTOR_HELP, **kw)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Exit codes: see README.md, 'Exit codes' (the table in device/errors.py).")
@click.option("--source", help="picamera2 | camera index (0) | video file | image file | folder of images.")
@click.option("--model", help="int8 .tflite with metadata.json beside it, or a shipped model's name (a folder of "
                              f"device/models/: {', '.join(shipped_models()) or 'none installed'}; README's models "
                              "table) [default: default].")
@click.option("--threads", type=click.IntRange(1), default=DEFAULTS.threads, show_default=True,
              help="LiteRT interpreter threads.")
@click.option("--mode", type=click.Choice(["kiosk", "driver", "none"]), default=DEFAULTS.mode, show_default=True,
              help="driver: the largest face, absent/alert events; kiosk: every face, periodic aggregates.")
@click.option("--detect-every", type=click.IntRange(1), default=DEFAULTS.detect_every, show_default=True,
              help="Run face detection every N frames; IoU tracking keeps the boxes in between.")
@detector_option()
@click.option("--detect-width", type=click.IntRange(0),
              help="haar: detect faces on a copy of the frame shrunk to this width (0: full size) "
                   f"[default: {DETECT_WIDTH}; {STILLS_DETECT_WIDTH} for still images].")
@click.option("--min-face", type=click.IntRange(8), default=DEFAULTS.min_face, show_default=True,
              help="Smallest face, in frame pixels.")
@click.option("--cascade", type=click.Path(dir_okay=False),
              help="haar: cascade XML [default: OpenCV's frontal face].")
@click.option("--smoothing", type=click.FloatRange(0.0, 1.0, min_open=True), default=DEFAULTS.smoothing,
              show_default=True, help="EMA weight of the newest frame's probabilities (1: no smoothing).")
@click.option("--absent-after", type=click.FloatRange(0.0), default=DEFAULTS.absent_after, show_default=True,
              help="driver: seconds without a face before an 'absent' event.")
@click.option("--alert-labels", default=",".join(DEFAULTS.alert_labels), show_default=True, callback=parse_labels,
              help="driver: labels that raise an alert.")
@click.option("--alert-threshold", type=click.FloatRange(0.0, 1.0), default=DEFAULTS.alert_threshold,
              show_default=True, help="driver: smoothed probability of an alert label that counts.")
@click.option("--alert-after", type=click.FloatRange(0.0), default=DEFAULTS.alert_after, show_default=True,
              help="driver: seconds the alert state must last before an 'alert' event.")
@click.option("--interval", type=click.FloatRange(0.0, min_open=True), default=DEFAULTS.interval, show_default=True,
              help="kiosk: seconds per aggregate.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="JSON Lines file (or /dev/null, a named pipe, /dev/stdout) [default: stdout].")
@click.option("--log-max-mb", type=click.FloatRange(0.0, min_open=True),
              help="Rotate the log at this size: LOG -> LOG.1 -> ... (a kiosk never fills its SD card).")
@click.option("--log-keep", type=click.IntRange(0), default=DEFAULTS.log_keep, show_default=True,
              help="Rotated log files kept with --log-max-mb.")
@click.option("--loop", is_flag=True, help="Play the clip or the images again and again (soak tests).")
@click.option("--fps-every", type=click.IntRange(0), default=DEFAULTS.fps_every, show_default=True,
              help="Write an fps record every N frames (0: never).")
@click.option("--max-frames", type=click.IntRange(1), help="Stop after N frames.")
@click.option("--max-fps", type=click.FloatRange(0, min_open=True),
              help="At most N frames a second: spares a Pi's cores and heat; a clip plays at that pace.")
@click.option("--preview", is_flag=True, help="Show the annotated frames in a window (needs a display).")
@click.option("--save-video", type=click.Path(dir_okay=False), help="Write the annotated frames to OUT.mp4 (mp4v).")
@click.option("--camera-size", default=size_text(DEFAULTS.camera_size), show_default=True, callback=parse_size,
              help="Camera frame size (picamera2: the lores/gray stream).")
@click.option("--main-size", default=size_text(DEFAULTS.main_size), show_default=True, callback=parse_size,
              help="picamera2 main (colour) stream size, used for --preview/--save-video.")
@mqtt_options
@click.pass_context
def cli(ctx, **options):
    """Classify facial expressions in camera frames, a clip or images (see `bench` for benchmarks)."""
    if ctx.invoked_subcommand is not None:
        return
    if not options["source"]:
        raise click.UsageError("give --source (picamera2, a camera index, a video, an image or a folder), "
                               "or a command such as `bench`")
    if options["cascade"] and options["detector"] != "haar":  # the default detector is not Haar either
        raise click.UsageError("--cascade is a Haar cascade: use it with --detector haar")
    if options["log_max_mb"] and not options["log_path"]:
        raise click.UsageError("--log-max-mb needs --log FILE (stdout is not rotated)")
    if options["log_keep"] != DEFAULTS.log_keep and not options["log_max_mb"]:
        raise click.UsageError("--log-keep needs --log-max-mb")
    mqtt = pop_mqtt_config(options)
    opts = RunOptions(**options, mqtt=mqtt)
    print_summary(run_loop(opts), opts.log_path)


@cli.command()
@click.option("--float", "float_path", type=click.Path(dir_okay=False), help="float32 .tflite")
@click.option("--int8", "int8_path", type=click.Path(dir_okay=False), help="int8 .tflite (one of the two at least)")
@click.option("--faces", "faces_path", type=click.Path(dir_okay=False),
              help="eval_faces.npz: faces uint8 (N,48,48), labels, split, label_names (without: no accuracy).")
@click.option("--video", type=click.Path(dir_okay=False), help="Clip for end-to-end loop fps.")
@click.option("--threads", default="1", show_default=True, callback=parse_threads, help="Thread counts, e.g. 1,2,4.")
@click.option("--runs", type=click.IntRange(1), default=200, show_default=True, help="Timed batch-1 calls.")
@click.option("--warmup", type=click.IntRange(0), default=20, show_default=True, help="Untimed calls first.")
@click.option("--detect-every", type=click.IntRange(1), default=3, show_default=True, help="Loop: detect every N frames.")
@click.option("--max-frames", type=click.IntRange(1), help="Loop: at most N frames of the clip.")
@detector_option(default=DEFAULT_DETECTOR)  # a clip, so the loop's default for cameras and clips
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the results as JSON here, with the command that made them.")
@click.pass_context
def bench(ctx, float_path, int8_path, faces_path, video, threads, runs, warmup, detect_every, max_frames, detector,
          json_path):
    """int8 vs float32: accuracy, drop, agreement, latency per thread count, loop fps on a clip (the runtime's loop)."""
    if not (float_path or int8_path):
        raise click.UsageError("give --int8 and/or --float")
    if video and not Path(video).is_file():
        raise InputError(f"video not found: {video}")
    result = run_bench(float_path, int8_path, faces_path, video=video, threads=threads, warmup=warmup,
                       runs=runs, detect_every=detect_every, max_frames=max_frames, detector=detector,
                       log=lambda s: click.echo(s, err=True))
    prov = record(BENCH_PROG, bench_argv(ctx), ctx.params)
    click.echo(format_header(prov))  # so a pasted table says what ran where (README, "Pi speed")
    click.echo(format_table(result))
    if json_path:
        write_json(json_path, portable_record({**result, "provenance": prov}))  # runs as runs/NAME (device/paths.py)
        click.echo(f"wrote {json_path}", err=True)


cli.add_command(fetch_models, "fetch-models")


def bench_argv(ctx) -> list[str]:
    """What was typed after ``bench`` (``run_click`` hands the whole argv down as ``ctx.obj``)."""
    argv = list(ctx.obj if ctx.obj is not None else sys.argv[1:])
    return argv[argv.index(ctx.info_name) + 1:] if ctx.info_name in argv else argv


def main(argv: list[str] | None = None) -> int:
    """The script's entry point: one ``error:`` line and the exit code of device/errors.py's table."""
    return run_click(cli, argv, prog_name="run.py")


if __name__ == "__main__":
    exit_with(main())
