"""device.errors.run_commands: ``PROG ARGS`` runs the default command exactly as before subcommands
existed, ``PROG NAME ARGS`` a subcommand; and the four command lines built on it (train, convert,
device.fleet) as a user types them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from device.errors import EXIT_FAILED, EXIT_INPUT, EXIT_OK, EXIT_USAGE, InputError, run_commands

ROOT = Path(__file__).resolve().parents[2]


@click.command()
@click.argument("run_dir")
@click.option("--int8", is_flag=True)
@click.pass_context
def default(ctx, run_dir, int8):
    click.echo(f"default {run_dir} int8={int8} argv={ctx.obj} prog={ctx.command_path}")


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.pass_context
def select(ctx, runs):
    if "missing" in runs:
        raise InputError("missing: no such run")
    if "stop" in runs:
        raise KeyboardInterrupt
    click.echo(f"select {list(runs)} argv={ctx.obj} prog={ctx.command_path}")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = run_commands(default, {"select": select}, list(argv), prog_name="python -m tool")
    out, err = capsys.readouterr()
    return code, out, err


def test_the_default_command_gets_every_argument(capsys):
    assert run(capsys, "runs/a", "--int8") == (
        EXIT_OK, "default runs/a int8=True argv=['runs/a', '--int8'] prog=python -m tool\n", "")
    assert run(capsys, "--int8", "runs/select")[1].startswith("default runs/select")  # a name only counts first


def test_a_subcommand_gets_the_rest_and_its_own_program_name(capsys):
    assert run(capsys, "select", "r1", "r2") == (
        EXIT_OK, "select ['r1', 'r2'] argv=['r1', 'r2'] prog=python -m tool select\n", "")


@pytest.mark.parametrize("argv, code, words", [
    ((), EXIT_USAGE, "Missing argument 'RUN_DIR'"),         # as before: the default command's own message
    (("select",), EXIT_USAGE, "Missing argument 'RUNS...'"),
    (("select", "missing"), EXIT_INPUT, "missing: no such run"),
    (("select", "stop"), EXIT_FAILED, "interrupted"),
    (("a", "--float99"), EXIT_USAGE, "--float99"),
])
def test_bad_input_is_one_error_line_and_the_table_code(capsys, argv, code, words):
    got, out, err = run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]  # click prints a newline on Ctrl-C
    assert got == code and out == "" and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


@pytest.mark.parametrize("argv, listed", [
    (["-m", "convert"], "select, soup, recover, crosscheck"),
    (["-m", "train"], "bench, pack, unpack, teacher-cache, stage-teacher-cache"),
    (["-m", "device.fleet"], "check"),
])
def test_each_command_lines_help_names_its_subcommands(argv, listed):
    p = subprocess.run([sys.executable, *argv, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and listed in " ".join(p.stdout.split()), p.stderr
    sub = listed.split(", ")[0]
    p = subprocess.run([sys.executable, *argv, sub, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and f"Usage: python {' '.join(argv)} {sub} " in p.stdout, p.stderr
