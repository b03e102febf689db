"""Atomic file writes, so a failed or interrupted run never leaves a half-written file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import TunesmithError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; move it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any, *, indent: int = 2) -> Path:
    """Write JSON atomically, keeping non-ASCII (Chinese) text readable."""
    return write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent, default=str) + "\n")


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write JSON Lines atomically."""
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def copy_new(src: str | Path, target_dir: str | Path) -> Path:
    """Copy ``src`` into ``target_dir`` under a name no file there has (``name-1.ext``, ...); returns it.

    The copy is written to a temporary file first and linked in under the free name, which fails
    rather than overwrite if another file took that name meanwhile; no half-copied file is visible.
    """
    src, target_dir = Path(src), Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{src.name}.", suffix=".tmp", dir=target_dir)
    os.close(fd)
    tmp = Path(name)
    try:
        shutil.copyfile(src, tmp)
        for n in range(10_000):
            target = target_dir / (src.name if n == 0 else f"{src.stem}-{n}{src.suffix}")
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue
    finally:
        tmp.unlink(missing_ok=True)
    raise TunesmithError(f"{target_dir}: no free name for {src.name}", hint="remove old copies")


def replace_dir(new: str | Path, target: str | Path) -> Path:
    """Move the finished folder ``new`` to ``target``. A folder already at ``target`` is moved aside
    first and removed only once ``new`` is in place, so one of the two is always complete there.
    Callers decide beforehand whether ``target`` may be replaced."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return target
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, aside / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(aside / target.name, target)
        aside.rmdir()
        raise
    shutil.rmtree(aside)
    return target


def ensure_replaceable(path: str | Path, marker: str) -> None:
    """Refuse a ``path`` that exists and is neither empty nor marked by ``marker`` as tunesmith's own."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / marker).is_file())):
        raise TunesmithError(f"{path} already holds files tunesmith did not write (no {marker}); nothing was "
                             "changed", hint="move that folder elsewhere, or choose another cache_dir")


@contextmanager
def atomic_dir(path: str | Path, *, marker: str) -> Iterator[Path]:
    """Yield a temporary sibling directory; it replaces ``path`` only if the block succeeds.

    An existing ``path`` is replaced only when it is empty or holds ``marker`` (the file that says
    tunesmith wrote it); anything else there is refused (call ``ensure_replaceable`` before the work
    to refuse it earlier) and never deleted.
    """
    path = Path(path)
    ensure_replaceable(path, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
