"""Run other ``tunesmith`` commands (data check, advise, eval, export) for the UI, in subprocesses.

The UI never re-implements a command: it writes the config the command reads, runs the command as a
user would, and shows what it printed and the files it wrote. Commands that this version of
tunesmith does not have are detected (``tunesmith COMMAND --help`` fails) so the UI can say so.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tunesmith.webui.jobs import cli_command, shown_command

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TUNESMITH_NO_PROGRESS": "1", "COLUMNS": "110",
            "NO_COLOR": "1", "TERM": "dumb"}


@functools.cache
def available(command: str) -> bool:
    """Whether ``tunesmith COMMAND`` exists in this installation."""
    try:
        proc = subprocess.run(cli_command(*command.split(), "--help"), capture_output=True, timeout=60, env=_env())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@dataclass
class Progress:
    """Output so far of a running command; ``returncode`` is set when it has ended."""

    command: str
    output: str = ""
    returncode: int | None = None


def stream(args: list[str], *, cwd: str | Path | None = None, every: float = 0.5) -> Iterator[Progress]:
    """Run ``tunesmith ARGS``, yielding the accumulated output about every ``every`` seconds."""
    cmd = cli_command(*args)
    progress = Progress(shown_command(cmd))
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=_env(), text=True, encoding="utf-8", errors="replace", bufsize=1)
    last = 0.0
    try:
        for line in proc.stdout or ():
            progress.output += _ANSI.sub("", line)
            if time.time() - last >= every:
                last = time.time()
                yield progress
        progress.returncode = proc.wait()
    finally:
        if proc.poll() is None:  # the page went away mid-run
            proc.terminate()
    yield progress


def run(args: list[str], *, cwd: str | Path | None = None) -> Progress:
    """Run ``tunesmith ARGS`` to the end."""
    return deque(stream(args, cwd=cwd), maxlen=1)[0]
