"""Where things live on this machine, in one place: the shared data folder and the runs root.

Records committed to the repository never hold a machine's own paths: a run folder is written as
``runs/NAME`` (relative to the runs root) and data as a path relative to the repository when it is
inside or beside it. ``FERLITE_SHARED`` and ``FERLITE_RUNS`` say where the two roots are on a machine.
Writers pass what they record through ``portable_record``; readers pass a recorded run through
``resolve_run``, so old records (absolute paths) and new ones (``runs/NAME``) read alike.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS_PREFIX = "runs"  # how records name the runs root
# An absolute path inside a command line or a sentence: a "/" that starts a word (not a URL's "//",
# not "$d/root" or "a/b"), up to the next blank, quote or closing bracket.
ABSOLUTE = re.compile(r"(?<![\w.~$}/:-])/[^\s'\"`,;)\]]+")


def shared_dir() -> Path:
    """The shared folder (data/, paper.txt): ``$FERLITE_SHARED``, else ``../shared`` beside the repository."""
    return Path(os.environ.get("FERLITE_SHARED") or REPO.parent / "shared")


def shared_data(*parts: str) -> Path:
    """A path under the shared folder's data/, e.g. ``shared_data("faces", "fer_test.mp4")``."""
    return shared_dir().joinpath("data", *parts)


def runs_root() -> Path:
    """Where run folders live on this machine: ``$FERLITE_RUNS``, else ``runs/`` in the repository."""
    return Path(os.environ.get("FERLITE_RUNS") or REPO / RUNS_PREFIX)


@contextlib.contextmanager
def runs_root_at(root: str | os.PathLike | None):
    """``runs_root()`` is ``root`` inside the block (a command's --runs), unless ``root`` is None."""
    before = os.environ.get("FERLITE_RUNS")
    if root is not None:
        os.environ["FERLITE_RUNS"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if root is not None and before is None:
            os.environ.pop("FERLITE_RUNS", None)
        elif root is not None:
            os.environ["FERLITE_RUNS"] = before


def resolve_run(name: str | os.PathLike) -> Path:
    """A run as a record names it (``runs/NAME``, or an old record's absolute path) or as a user typed
    it -> a path on this machine: ``runs/NAME`` is under the runs root unless ``./runs/NAME`` exists."""
    p = Path(name)
    if not p.is_absolute() and p.parts[:1] == (RUNS_PREFIX,) and not (Path.cwd() / p).exists():
        return runs_root().joinpath(*p.parts[1:])
    return p


def portable(path: str | os.PathLike) -> str:
    """``path`` as a record may hold it: ``runs/NAME...`` under the runs root, relative to the repository
    (``.`` for the repository itself, ``../shared/...`` beside it) when it is there. A relative path is
    kept as given (it is relative to the recorded ``cwd``), and so is an absolute one outside these
    roots (a test's temporary folder): tests/test_portable_paths.py refuses such a path in a committed file."""
    given = Path(path)
    if not given.is_absolute():
        return given.as_posix()
    beside = [(REPO.parent, Path(".."))] if REPO.parent != Path(REPO.anchor) else []  # never "../" of the whole disk
    roots = ((Path(os.path.abspath(runs_root())), Path(RUNS_PREFIX)), (runs_root().resolve(), Path(RUNS_PREFIX)),
             (REPO, Path()), *beside)
    for p in (Path(os.path.abspath(given)), given.resolve()):  # as named (a venv's python is a link), then real
        for root, prefix in roots:
            try:
                return (prefix / p.relative_to(root)).as_posix()
            except ValueError:
                pass
    return given.as_posix()


def portable_text(text: str) -> str:
    """Every absolute path in ``text`` (a command line, a note) made portable."""
    return ABSOLUTE.sub(lambda m: portable(m.group()), text)


def portable_record(obj):
    """A JSON record with every string made portable (``portable_text``), keys and other values as they are."""
    if isinstance(obj, str):
        return portable_text(obj)
    if isinstance(obj, dict):
        return {k: portable_record(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable_record(v) for v in obj]
    return obj
