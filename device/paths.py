"""Where things live on this machine, in one place: the shared data folder and the runs root.

Records committed to the repository never hold a machine's own paths: a run folder is written as
``runs/NAME`` (relative to the runs root) and data as a path relative to the repository when it is
inside or beside it. ``FERLITE_SHARED`` and ``FERLITE_RUNS`` say where the two roots are on a machine.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS_PREFIX = "runs"  # how records name the runs root


def shared_dir() -> Path:
    """The shared folder (data/, paper.txt): ``$FERLITE_SHARED``, else ``../shared`` beside the repository."""
    return Path(os.environ.get("FERLITE_SHARED") or REPO.parent / "shared")


def shared_data(*parts: str) -> Path:
    """A path under the shared folder's data/, e.g. ``shared_data("faces", "fer_test.mp4")``."""
    return shared_dir().joinpath("data", *parts)


def runs_root() -> Path:
    """Where run folders live on this machine: ``$FERLITE_RUNS``, else ``runs/`` in the repository."""
    return Path(os.environ.get("FERLITE_RUNS") or REPO / RUNS_PREFIX)


def resolve_run(name: str | os.PathLike) -> Path:
    """A run as a record names it (``runs/NAME``) or as a user typed it -> a path on this machine."""
    p = Path(name)
    if not p.is_absolute() and p.parts[:1] == (RUNS_PREFIX,) and not (Path.cwd() / p).exists():
        return runs_root().joinpath(*p.parts[1:])
    return p


def portable(path: str | os.PathLike) -> str:
    """``path`` as a record may hold it: ``runs/NAME`` under the runs root, relative to the repository
    (``../shared/...`` included) when it is there or beside it, else its name alone."""
    p = Path(path).resolve() if Path(path).is_absolute() or Path(path).exists() else Path(path)
    if not p.is_absolute():
        return p.as_posix()
    for root, prefix in ((runs_root().resolve(), Path(RUNS_PREFIX)), (REPO, Path())):
        try:
            return (prefix / p.relative_to(root)).as_posix()
        except ValueError:
            pass
    try:
        return (Path("..") / p.relative_to(REPO.parent)).as_posix()
    except ValueError:
        return p.name
