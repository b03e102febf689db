"""What a run does when the disk lets it down: refuse an unwritable ``output_dir`` before any work,
and turn a save that fails half-way (a full disk, a quota, a read-only remount) into one clear error.

The Trainer writes a checkpoint's files in place and ``trainer_state.json`` last, so a folder whose
state file is missing or cut short is a half-written one. After a failed save, that folder is removed
(it would only take space and confuse ``resume_from_checkpoint=last``); the earlier checkpoints are
untouched, and the error names the newest complete one and the command that resumes from it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tunesmith.utils.errors import ConfigError, TrainingError

# The errors a save can meet that the user can fix (the rest are bugs and keep their traceback).
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"


def check_writable(output_dir: str | Path) -> None:
    """Fail now, not after the model loaded and trained, when ``output_dir`` cannot be written.

    Creates (and removes) a probe folder inside the nearest existing ancestor; nothing is left behind.
    """
    out = Path(output_dir).absolute()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError([f"'output_dir': {str(out)!r} cannot be created: {str(existing)!r} is a file, not a folder; "
                           "choose another output_dir"])
    try:
        probe = Path(tempfile.mkdtemp(prefix=".tunesmith-write-probe-", dir=existing))
        probe.rmdir()
    except OSError as exc:
        raise ConfigError([f"'output_dir': {str(out)!r} cannot be written ({exc.strerror} in {str(existing)!r}); "
                           "choose a folder you can write to, or fix its permissions"]) from None


def checkpoint_state(folder: Path) -> int | None:
    """The step a checkpoint folder finished saving, or None when it is half-written."""
    try:
        return int(json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def split_checkpoints(output_dir: Path) -> tuple[list[Path], list[Path]]:
    """(half-written, complete) checkpoint-N folders in ``output_dir``, each sorted by step."""
    if not output_dir.is_dir():
        return [], []
    folders = sorted((p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)),
                     key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))  # type: ignore[union-attr]
    complete = [p for p in folders if checkpoint_state(p) is not None]
    return [p for p in folders if p not in complete], complete


def save_failed(output_dir: Path, exc: OSError) -> TrainingError:
    """The error for a failed save: what failed, what was removed, what is still usable, how to go on."""
    torn, complete = split_checkpoints(output_dir)
    for folder in torn:
        shutil.rmtree(folder, ignore_errors=True)
    where = exc.filename or output_dir
    free = f" ({shutil.disk_usage(output_dir).free / 1e6:.1f} MB free there)" if output_dir.is_dir() else ""
    lines = [f"Saving failed while writing {where}: {exc.strerror or exc}{free}."]
    if torn:
        lines.append(f"The half-written {', '.join(p.name for p in torn)} was removed.")
    if complete:
        lines.append(f"The previous checkpoint {complete[-1]} is complete and usable.")
        hint = ("free disk space (or move output_dir elsewhere), then resume from it: "
                "tunesmith train CONFIG resume_from_checkpoint=last")
    else:
        lines.append("No checkpoint had been completed yet.")
        hint = "free disk space or choose another output_dir, then start the run again"
    return TrainingError(" ".join(lines), hint=hint)


def write_error(exc: BaseException) -> OSError | None:
    """The disk error behind ``exc``, if it is one. Not every writer raises OSError: safetensors (Rust)
    raises SafetensorError "... (os error 28)", torch.save a RuntimeError from its stream writer."""
    if isinstance(exc, OSError):
        return exc if exc.errno in WRITE_ERRORS else None
    text = str(exc)
    if (m := re.search(r"\(os error (\d+)\)", text)) and int(m.group(1)) in WRITE_ERRORS:
        return OSError(int(m.group(1)), os.strerror(int(m.group(1))))
    if isinstance(exc, RuntimeError) and any(s in text for s in ("PytorchStreamWriter", "inline_container",
                                                                   "file write failed")):
        return OSError(errno.EIO, "torch.save could not finish writing its file (is the disk full?)")
    return None


@contextmanager
def save_faults(output_dir: str | Path) -> Iterator[None]:
    """Turn a failing disk inside the block (any writer's way of saying so) into :func:`save_failed`'s error."""
    try:
        yield
    except Exception as exc:
        if (os_error := write_error(exc)) is None:
            raise
        raise save_failed(Path(output_dir), os_error) from exc
