"""Sourceable environment files: ``export NAME='value'`` lines, one variable each.

The testbed's ``.testbed/env`` merges the control plane's variables with the emulator
stack's env file; both are read back by fixtures and tools with ``read``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path


def parse(text: str) -> dict[str, str]:
    """Variables from ``NAME=value`` or ``export NAME=value`` lines (shell quoting honoured)."""
    variables: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep and name.isidentifier():
                variables[name] = value
    return variables


def read(path: Path) -> dict[str, str]:
    return parse(path.read_text())


def render(variables: Mapping[str, str], *, header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    return "\n".join(lines) + "\n"


def write(path: Path, variables: Mapping[str, str], *, header: str = "") -> None:
    """Write atomically (rename), readable by the owner only: it may hold tokens' paths and
    the emulator identity's client secret."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render(variables, header=header))
    tmp.replace(path)
