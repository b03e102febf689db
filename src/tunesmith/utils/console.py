"""One rich console for the whole tool, plus progress helpers that stay quiet in tests and CI logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

# Wide tables in logs and CI: rich falls back to 80 columns when output is not a terminal.
_width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
# In a multi-process run (torchrun sets RANK) only rank 0 prints progress; errors print on every rank.
console = Console(highlight=False, width=_width, quiet=os.environ.get("RANK", "0") != "0")
err_console = Console(stderr=True, highlight=False, width=_width)


_told: set[str] = set()


def note_once(key: str, message: str) -> None:
    """Tell the user, once per process, about a setting that is ignored or changed (and why).

    ``key`` says what the note is about, so the same note from several stages or reloads prints once.
    """
    if key in _told:
        return
    _told.add(key)
    console.print(f"[yellow]note[/yellow]: {message}")


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with a message while a long step runs (plain line when not a terminal)."""
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        console.print(f"[dim]…[/dim] {message}")
        yield


def progress_columns() -> tuple:
    """Columns for rich progress bars used by training, generation and evaluation."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
