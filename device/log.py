"""JSON Lines output: one JSON object per line, each written whole and flushed at once.

A reader tailing the log (or a crash, or Ctrl-C) never sees half a record: every line goes
out in one ``write`` followed by ``flush``; the summary is the last line, written at exit.

A device runs for weeks, so the log never stops the loop:

- any target works: a regular file, ``/dev/null``, a named pipe, ``/dev/stdout`` (only a regular
  file is fsynced, at close and before a rotation);
- a write that fails (a full disk, a read-only file system, a pipe nobody reads) is said once on
  stderr; records are dropped (and counted) while it lasts, and the log is tried again every
  ``retry_s`` seconds. A line cut short by the failure is cut off again, so every line before it
  stays whole; when writing works again a ``{"type": "log", "event": "resumed"}`` record, written
  together with the record that got through, marks the gap;
- a log file deleted or moved away under the writer is noticed within ``check_s`` seconds (and
  always before the summary) and made anew (said once on stderr);
- ``max_mb`` rotates the file (PATH -> PATH.1 -> ... -> PATH.K, the oldest deleted) so a kiosk
  never fills its SD card; every new file starts with the ``start`` record again (with ``part``).

The summary record gets a ``log`` block saying what happened (lines, dropped, outages, ...).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import IO, Callable, Optional

from .provenance import jsonable

RETRY_S = 5.0      # a failing log is tried again this often
CHECK_S = 1.0      # a log file deleted or moved away under the writer is looked for this often
DEFAULT_KEEP = 3   # rotated files kept with --log-max-mb
MB = 1_000_000     # as --mqtt-outbox-mb counts
FILE_MODE = 0o640  # the records say what faces showed: no one but the owner and its group, whatever the umask


def dumps(obj) -> str:
    # ``jsonable`` only sees what json cannot write itself (numpy values, paths): cheap per frame.
    return json.dumps(obj, separators=(",", ":"), default=jsonable)


def rotated_name(path: Path, k: int) -> Path:
    """The k-th old file of a rotated log: ``drive.jsonl.1`` is the newest."""
    return path.with_name(f"{path.name}.{k}")


def is_stdout(path) -> bool:
    """Whether ``path`` is the file this process's stdout already writes (``/dev/stdout``, or the
    file stdout is redirected to): writing it through a second descriptor would overwrite lines."""
    if not path:
        return False
    try:
        return os.path.samestat(os.stat(path), os.fstat(1))
    except (OSError, ValueError):
        return False


def reason(e: BaseException) -> str:
    """``ENOSPC: No space left on device``: the errno's name, which a search finds, and its text."""
    if isinstance(e, OSError) and e.errno in errno.errorcode:
        return f"{errno.errorcode[e.errno]}: {e.strerror}"
    return f"{type(e).__name__}: {e}"


def stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class JsonlWriter:
    """Write records to ``path`` (created or truncated) or, when ``path`` is None, to ``stream`` (stdout).

    ``write`` never raises for a log that cannot be written (see the module's docstring); only
    a log that cannot be created at all fails, in ``__init__``, before the loop starts.
    ``write_fn`` is the raw write (``os.write``), replaceable to inject faults in tests.
    """

    def __init__(self, path: str | Path | None = None, stream: Optional[IO[str]] = None, *,
                 max_mb: float | None = None, keep: int = DEFAULT_KEEP, retry_s: float = RETRY_S,
                 check_s: float = CHECK_S, say: Callable[[str], None] = stderr_line,
                 clock: Callable[[], float] = time.monotonic, write_fn: Callable = os.write):
        if max_mb is not None and max_mb <= 0 or keep < 0:
            raise ValueError("max_mb must be > 0 and keep >= 0")
        self.path = Path(path) if path and not is_stdout(path) else None
        self.target = str(self.path) if self.path else "stdout"
        self.max_bytes = int(max_mb * MB) if max_mb else None
        self.keep, self.retry_s, self.check_s = keep, retry_s, check_s
        self.say, self.clock, self._write = say, clock, write_fn
        self.lines = self.dropped = self.outages = self.rotations = self.lost = 0
        self.error: Optional[str] = None   # the current outage's reason; None while the log is written
        self._outage_dropped = 0
        self._start: Optional[dict] = None  # repeated at the top of every new file
        self._part = 0
        self._fd: Optional[int] = None
        self._regular, self._size, self._dirty, self._ident = False, 0, False, None
        self._retry_at = self._check_at = 0.0
        self._lines_at_check = 0
        self._stream = (stream if stream is not None else sys.stdout) if self.path is None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open(os.O_TRUNC)

    # -- the one public call ---------------------------------------------------------
    def write(self, record: dict) -> None:
        if self._start is None and record.get("type") == "start":
            self._start = record
        if record.get("type") == "summary":
            record["log"] = self.stats()  # the caller's own dict: run.py prints it too
        lines = []
        if self.error is not None:  # in an outage: try again now and then, with a record of the gap first
            if self.clock() < self._retry_at or not self._ready_again():
                self._drop(record)
                return
            lines.append(dumps({"type": "log", "event": "resumed", "dropped": self._outage_dropped,
                                "error": self.error}) + "\n")
        elif self._fd is not None and (self.clock() >= self._check_at or record.get("type") == "summary"):
            self._check_file()  # always before the summary: it must not go into a deleted file
            if record.get("type") == "summary":
                record["log"] = self.stats()  # with what the deleted file took
        line = dumps(record) + "\n"
        if self._rotation_due(len(line)):
            self._rotate()
            if record.get("type") == "summary":  # count the rotation this very line caused
                record["log"] = self.stats()
                line = dumps(record) + "\n"
        if (self.error is not None and not lines) or not self._put(lines + [line]):
            self._drop(record)  # a failed rotation or reopen, or this write
            return
        if lines:
            self.say(f"log: writing {self.target} again ({self._outage_dropped} records were dropped)")
            self.error = None

    def stats(self) -> dict:
        s = {"path": self.target, "lines": self.lines, "dropped": self.dropped, "outages": self.outages}
        if self.max_bytes:
            s["rotations"] = self.rotations
        if self.lost:
            s["lost_with_deleted_file"] = self.lost
        if self.error:
            s["error"] = self.error
        return s

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            if self._regular and self.error is None:
                os.fsync(self._fd)  # never on /dev/null or a pipe: EINVAL
        except OSError as e:
            self._fail(e)
        finally:
            self._close_fd()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing and failing -----------------------------------------------------------
    def _put(self, lines: list[str]) -> bool:
        """Whole lines out in one write, or False (the outage begun or carried on, the part written cut off)."""
        text = "".join(lines)
        try:
            if self._stream is not None:
                self._stream.write(text)
                self._stream.flush()
            else:
                data = text.encode("utf-8")
                view = memoryview(data)
                while view:  # a short write (a disk filling up) goes on with the rest, or fails
                    n = self._write(self._fd, view)
                    if n <= 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    view = view[n:]
                self._size += len(data)
        except (OSError, ValueError) as e:  # ValueError: a closed stream
            self._fail(e)
            return False
        self.lines += len(lines)
        return True

    def _drop(self, record: dict) -> None:
        self.dropped += 1
        self._outage_dropped += 1
        if record.get("type") == "summary":
            record["log"] = self.stats()  # counts the summary itself as dropped, for the copy on stdout

    def _fail(self, e: BaseException) -> None:
        self._cut()
        self._retry_at = self.clock() + self.retry_s
        if self.error is None:  # one line per outage, however long it lasts
            self.outages += 1
            self._outage_dropped = 0
            self.error = reason(e)
            self.say(f"log: cannot write {self.target} ({self.error}); the loop goes on, dropping records "
                     f"until the log can be written, tried again every {self.retry_s:g} s")

    def _cut(self) -> None:
        """Cut a regular file back to its last whole line (O_APPEND: the next write lands there)."""
        if not self._regular or self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._size)
            self._dirty = False
        except OSError:
            self._dirty = True  # tried again before the next write

    def _ready_again(self) -> bool:
        """After an outage: reopen the log if it is gone, cut a half line left over; False if that fails."""
        try:
            if self._stream is None and (self._fd is None or self._gone()):
                self._reopen()
            if self._dirty and self._fd is not None:
                os.ftruncate(self._fd, self._size)
                self._dirty = False
        except OSError as e:
            self._fail(e)
            return False
        return True

    # -- the file itself ---------------------------------------------------------------
    def _open(self, extra_flags: int) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | extra_flags, FILE_MODE)
        st = os.fstat(fd)
        self._fd, self._regular = fd, stat.S_ISREG(st.st_mode)
        self._size = st.st_size if self._regular else 0
        self._ident = (st.st_dev, st.st_ino)
        self._dirty = False
        self._lines_at_check = self.lines
        self._check_at = self.clock() + self.check_s

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _gone(self) -> bool:
        """The path no longer leads to the file we write (deleted, or moved away and maybe replaced)."""
        if not self._regular:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    def _reopen(self) -> None:
        self._close_fd()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open(0)  # appends: never clobbers a file someone else put there
        if self._size == 0:
            self._header()

    def _header(self) -> None:
        """A new file starts with the start record again, so each file says what ran."""
        self._part += 1
        if self._start is not None:
            self._put([dumps({**self._start, "part": self._part}) + "\n"])

    def _check_file(self) -> None:
        self._check_at = self.clock() + self.check_s
        if not self._gone():
            self._lines_at_check = self.lines
            return
        lost = self.lines - self._lines_at_check
        self.lost += lost
        self.say(f"log: {self.target} was deleted or moved away while being written (up to {lost} records "
                 f"went with it); writing a new {self.target}")
        try:
            self._reopen()
        except OSError as e:
            self._fail(e)

    def _rotation_due(self, n: int) -> bool:
        return bool(self.max_bytes and self._regular and self._fd is not None and self._size
                    and self._size + n > self.max_bytes)

    def _rotate(self) -> None:
        """PATH -> PATH.1 -> ... -> PATH.keep (the oldest replaced), then a new PATH."""
        try:
            os.fsync(self._fd)
            self._close_fd()
            for k in range(self.keep, 0, -1):
                src = self.path if k == 1 else rotated_name(self.path, k - 1)
                if src.exists():
                    os.replace(src, rotated_name(self.path, k))
            if self.keep == 0:
                self.path.unlink(missing_ok=True)
            self._open(os.O_TRUNC)
        except OSError as e:
            self._fail(e)
            return
        self.rotations += 1
        self._header()


class NullWriter:
    """Discards records (benchmarks)."""
    lines = 0

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass
