"""Reading deploy/ferlite.service as systemd does, for the tests that run its commands without systemd."""
from __future__ import annotations

import shlex
from pathlib import Path


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: sections of keys that may repeat (ExecStartPre=...), comments with # or ;."""
    units: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = units.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section is not None, f"not a unit line: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return units


def one(unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"{section}.{key}: {values}"
    return values[0]


def read_env_file(path: Path) -> dict[str, str]:
    """EnvironmentFile=: KEY=VALUE lines, the value unquoted; comments and blank lines skipped."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            env[key.strip()] = " ".join(shlex.split(value))
    return env


def expand(command: str, specifiers: dict[str, str], env: dict[str, str]) -> list[str]:
    """An Exec line's words: %X specifiers filled in, an unquoted ``$NAME`` split on white space."""
    for spec, value in specifiers.items():
        command = command.replace(spec, value)
    words = shlex.split(command)
    return [w for word in words for w in (env.get(word[1:], "").split() if word.startswith("$") else [word])]
