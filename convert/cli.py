"""``python -m convert RUN_DIR [--int8] [--float16] [--dynamic] ...``: click parsing -> ``pipeline.run``;
``python -m convert select | soup | recover | crosscheck | field | crops | ship | pareto | results ...``: the
commands of the modules so named.

Exit codes: the one table in ``device/errors.py`` (README, "Exit codes"); the ``--max-drop``
gate failing is 5, after the report is written.
"""
from __future__ import annotations

import click

from device.errors import EXIT_FAILED, GateFailed, commands_epilog, exit_with, run_commands
from device.paths import resolve_run
from device.provenance import record

from . import calibration as cal
from . import crop_study, crosscheck, field_bench, pareto, pipeline, recover, select, ship, soup
from .results import cli as results_cli
from . import report as rep

PROG = "python -m convert"
SUBCOMMANDS = {"select": select.cli, "soup": soup.cli, "recover": recover.cli, "crosscheck": crosscheck.cli,
               "field": field_bench.cli, "crops": crop_study.cli, "ship": ship.cli,
               "pareto": pareto.cli, "results": results_cli.cli}


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=commands_epilog(PROG, SUBCOMMANDS))
@click.argument("run_dir")
@click.option("--int8", "int8", is_flag=True, help="Full-integer int8 model (int8 input and output).")
@click.option("--float16", is_flag=True, help="Also a float16-weights model.")
@click.option("--dynamic", is_flag=True, help="Also a dynamic-range (int8 weights) model.")
@click.option("--out", type=str, default=None, help="Output folder (default: the run folder).")
@click.option("--calib", type=int, default=None, help=f"Calibration faces for --int8 (default {cal.DEFAULT_CALIB}).")
@click.option("--data", type=str, default=None, help="The run's data file, if it moved since training.")
@click.option("--ferplus", type=str, default=None, help="The run's FER+ votes file, if it moved since training.")
@click.option("--eval-limit", type=int, default=None, help="Evaluate on at most N faces (default: all).")
@click.option("--max-drop", type=float, default=None,
              help="Exit 5 when the int8 accuracy drop vs float32 exceeds PP percentage points.")
@click.option("--eval-faces", type=int, default=rep.DEFAULT_EVAL_FACES, show_default=True,
              help="Labelled faces written to eval_faces.npz for the device bench (0: none).")
@click.option("--latency-runs", type=int, default=pipeline.DEFAULT_LATENCY_RUNS, show_default=True,
              help="Timed runs per latency figure.")
@click.option("--threads", type=int, default=None, help="'All threads' for latency (default: CPU count).")
@click.option("--flip-tta", is_flag=True,
              help=f"Convert the model averaged with its mirror image (2x model time); writes to "
                   f"RUN/{pipeline.FLIP_TTA_DIR} unless --out is given.")
@click.option("--member", "members", multiple=True, metavar="RUN",
              help=f"Another run folder (same data, split and labels) whose model is averaged with this one "
                   f"inside the file (an ensemble; repeatable); writes to RUN/{pipeline.ENSEMBLE_DIR} "
                   f"(or RUN/{pipeline.ENSEMBLE_DIR}-{pipeline.FLIP_TTA_DIR}) unless --out is given.")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Fit a softmax temperature on the run's validation faces and bake it into the files, "
                   "so their probabilities are calibrated (convert/temperature.py).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def command(ctx, quiet, **options):
    """Convert the Keras model of training run RUN_DIR to TFLite and write report.json/report.md."""
    if options["calib"] is None:
        options["calib"] = cal.DEFAULT_CALIB
    elif not options["int8"]:
        raise click.UsageError("--calib sets the int8 calibration set size: it needs --int8")
    options["run_dir"] = str(resolve_run(options["run_dir"]))  # a recorded runs/NAME: under the runs root
    options["members"] = tuple(str(resolve_run(m)) for m in options["members"])
    result = pipeline.run(**options, progress=not quiet, provenance=record(PROG, ctx.obj, options))
    click.echo(rep.summary(result.report, result.paths["report_md"]))
    if result.gate_passed is False:
        g = result.report["gate"]
        raise GateFailed(f"int8 accuracy drop {g['drop_pp']:+.2f} pp exceeds --max-drop {g['max_drop_pp']} pp "
                         f"(report: {result.paths['report_md']})")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one ``error: ...`` line and the exit code of device/errors.py's table."""
    return run_commands(command, SUBCOMMANDS, argv, prog_name=PROG, interrupted=EXIT_FAILED,
                        interrupted_message="interrupted")


if __name__ == "__main__":
    exit_with(main())
