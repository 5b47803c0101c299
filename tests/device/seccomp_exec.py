"""Run a command under seccomp filters like those a systemd unit's directives install, killing it on a violation.

    python seccomp_exec.py ALLOWED_SYSCALLS_FILE FAMILIES MDWE -- COMMAND...

ALLOWED_SYSCALLS_FILE: the names SystemCallFilter= leaves (one a line; the caller expands the @sets
with systemd-analyze); FAMILIES: RestrictAddressFamilies=, comma-separated (AF_UNIX,AF_INET,...);
MDWE: 1 for MemoryDenyWriteExecute=yes (no mapping both writable and executable, no mprotect to
executable), as systemd builds them. Violations kill the process (SIGSYS) rather than return EPERM
as the unit's SystemCallErrorNumber= does, so that a test sees every one. Needs libseccomp's Python
module (Debian: python3-seccomp); run by the system Python or a venv made with --system-site-packages.
"""
import mmap
import os
import socket
import sys

import seccomp as sc

SHM_EXEC = 0o100000


def main(allowed_file: str, families: str, mdwe: str, command: list[str]) -> None:
    if mdwe == "1" or families:  # loaded first: loading a filter is not in the allow-list
        extra = sc.SyscallFilter(defaction=sc.ALLOW)
        if mdwe == "1":
            wx = mmap.PROT_WRITE | mmap.PROT_EXEC
            extra.add_rule(sc.KILL_PROCESS, "mmap", sc.Arg(2, sc.MASKED_EQ, wx, wx))
            for call in ("mprotect", "pkey_mprotect"):
                extra.add_rule(sc.KILL_PROCESS, call, sc.Arg(2, sc.MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
            extra.add_rule(sc.KILL_PROCESS, "shmat", sc.Arg(2, sc.MASKED_EQ, SHM_EXEC, SHM_EXEC))
        if families:
            ok = {getattr(socket, f) for f in families.split(",")}
            for family in range(64):
                if family not in ok:
                    extra.add_rule(sc.KILL_PROCESS, "socket", sc.Arg(0, sc.EQ, family))
        extra.load()
    allow = sc.SyscallFilter(defaction=sc.KILL_PROCESS)
    with open(allowed_file) as f:
        for name in f.read().split():
            try:
                allow.add_rule(sc.ALLOW, name)
            except (RuntimeError, ValueError, OSError):
                pass  # no such call on this architecture (systemd's lists cover them all)
    allow.load()
    os.execv(command[0], command)


if __name__ == "__main__":
    sep = sys.argv.index("--")
    main(*sys.argv[1:sep], sys.argv[sep + 1:])
