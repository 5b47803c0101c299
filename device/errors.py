"""One exit-code table and one error wrapper for the command lines (train, convert, device/run.py, device.fleet).

Every expected failure is an exception whose *type* says what went wrong; ``guarded`` turns it into
one ``error: ...`` line on stderr and the exit code below. No message text is ever searched.

    code  meaning
    0     done (the device loop also exits 0 when stopped by Ctrl-C / SIGTERM / a closed preview)
    1     failed while running (camera stopped delivering frames, a conversion that TF rejected)
    2     bad command line (unknown flag, a value out of range, options that cannot work together)
    3     bad input (missing, corrupt or wrong file: data, model, metadata, image, video; a camera
          that cannot be opened)
    4     missing package or display (no LiteRT interpreter, no picamera2, no screen for --preview)
    5     a quality gate failed (convert --max-drop: the int8 model lost too much accuracy)
    130   training interrupted by Ctrl-C (finished epochs are saved; continue with --resume)
"""
from __future__ import annotations

import os
import sys
from typing import Callable

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_ENV, EXIT_GATE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130


class FerliteError(Exception):
    """Base of every expected failure; subclasses set ``exit_code``."""
    exit_code = EXIT_FAILED


class RunFailed(FerliteError):
    """Something broke while running: the camera stopped, the converter failed."""
    exit_code = EXIT_FAILED


class UsageError(FerliteError):
    """Options that cannot work (checked after parsing, e.g. a preset with a bad value)."""
    exit_code = EXIT_USAGE


class InputError(FerliteError):
    """A missing, unreadable, corrupt or wrong input: the message names the file (and line)."""
    exit_code = EXIT_INPUT


class EnvironmentMissing(FerliteError):
    """A package or device the command needs is not there (LiteRT, picamera2, a display)."""
    exit_code = EXIT_ENV


class GateFailed(FerliteError):
    """The result exists but fails a threshold the user set."""
    exit_code = EXIT_GATE


def exit_code_for(e: BaseException) -> int:
    """Map an exception to the table above, by type only."""
    if isinstance(e, FerliteError):
        return e.exit_code
    if isinstance(e, click.UsageError):
        return EXIT_USAGE
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return EXIT_INPUT
    return EXIT_FAILED


def message_for(e: BaseException) -> str:
    if isinstance(e, click.ClickException):
        return e.format_message()
    if isinstance(e, FerliteError):
        return str(e)
    if isinstance(e, OSError):
        return f"{type(e).__name__}: {e}"
    return f"unexpected {type(e).__name__}: {e}"


def guarded(fn: Callable[[], object], *, interrupted: int = EXIT_OK,
            interrupted_message: str | None = None) -> int:
    """Run ``fn``; every failure becomes one ``error:`` line on stderr and its exit code.

    ``interrupted``: the code for a Ctrl-C that ``fn`` did not handle itself. Set FERLITE_DEBUG=1 to
    get the traceback instead (for bug reports).
    """
    try:
        fn()
        return EXIT_OK
    except click.exceptions.Exit as e:  # --help, --version
        return e.exit_code
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.format_message(), err=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, click.Abort):
        if interrupted_message:
            click.echo(f"error: {interrupted_message}", err=True)
        return interrupted
    except Exception as e:  # noqa: BLE001 - this is the one place that turns failures into exit codes
        if os.environ.get("FERLITE_DEBUG"):
            raise
        click.echo("error: " + " ".join(message_for(e).split()), err=True)  # one line, whatever the message held
        return exit_code_for(e)


def run_click(command: click.Command, argv=None, prog_name: str | None = None, **kw) -> int:
    """A click command in non-standalone mode under ``guarded``: the shared ``main()`` of every CLI.

    The arguments (``sys.argv[1:]`` when None) are also the context's ``obj``, so a command can
    record exactly what was typed (``device.provenance.record``)."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    return guarded(lambda: command.main(args=argv, prog_name=prog_name, standalone_mode=False, obj=argv), **kw)


def run_commands(default: click.Command, subcommands: dict[str, click.Command], argv=None,
                 prog_name: str = "", **kw) -> int:
    """``PROG ARGS`` runs ``default``, ``PROG NAME ARGS`` runs ``subcommands[NAME]``, each under ``run_click``.

    Why not a click group: a group parses before its subcommand, so ``python -m convert RUN --int8``
    and ``python -m train --data ...`` (README, tests, the records' commands) would need a command
    name in front. ``kw`` (what Ctrl-C means) is the default command's; a subcommand stopped by
    Ctrl-C exits 1 (``error: interrupted``)."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if argv and argv[0] in subcommands:
        return run_click(subcommands[argv[0]], argv[1:], prog_name=f"{prog_name} {argv[0]}",
                         interrupted=EXIT_FAILED, interrupted_message="interrupted")
    return run_click(default, argv, prog_name=prog_name, **kw)


def commands_epilog(prog: str, subcommands: dict) -> str:
    """The default command's --help line that names the others."""
    return (f"Other commands: {', '.join(subcommands)} ({prog} COMMAND --help). "
            "Exit codes: see README.md, 'Exit codes' (the table in device/errors.py).")


def exit_with(code: int) -> None:
    sys.stdout.flush()
    sys.exit(code)
