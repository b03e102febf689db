"""Images and video in conversation data: where the files are, and whether each record can be trained on.

Two shapes carry media (both end up as ``SFTExample.images`` / ``.videos``):

- Qwen2-VL-Finetune: ``{"image": "a.jpg" | [...], "video": "...", "conversations": [...]}`` with
  ``<image>`` / ``<video>`` placeholders in the turns and the files under ``--image_folder``;
- LLaMA-Factory: ``images`` / ``videos`` columns (``dataset_info.json`` ``columns``) beside
  ``messages`` or ``conversations``, relative to ``media_dir``.

A relative path is looked up under ``media_dir`` (tunesmith's key; ``image_folder`` is its
Qwen2-VL-Finetune name) when one is set, else beside the dataset file. Every problem is reported
before any model loads, each with the file, the record and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunesmith.data.records import Example, SFTExample
from tunesmith.utils.errors import DataFormatError

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"
MAX_LISTED = 20


def has_media(ex: Example) -> bool:
    return isinstance(ex, SFTExample) and bool(ex.images or ex.videos)


def resolve_media(examples: list[Example], media_dir: str | Path | None = None) -> list[Example]:
    """Turn each example's relative media paths into absolute ones (in place; returns the list)."""
    for ex in examples:
        if not isinstance(ex, SFTExample) or not (ex.images or ex.videos):
            continue
        base = Path(media_dir) if media_dir else Path(ex.origin.file).parent if ex.origin else Path.cwd()
        ex.images = [_absolute(p, base) for p in ex.images]
        ex.videos = [_absolute(p, base) for p in ex.videos]
    return examples


def _absolute(path: str, base: Path) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p).resolve())


def placeholder_counts(ex: SFTExample) -> tuple[int, int]:
    """(<image> count, <video> count) over every turn and the system prompt."""
    texts = [m.content for m in ex.messages] + ([ex.system] if ex.system else [])
    return (sum(t.count(IMAGE_PLACEHOLDER) for t in texts), sum(t.count(VIDEO_PLACEHOLDER) for t in texts))


def _image_problem(path: str) -> str | None:
    if not Path(path).is_file():
        return "not found"
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.verify()  # reads the whole file: a truncated download fails here, not in step 300
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        return f"cannot be read as an image ({type(exc).__name__}: {exc})"
    return None


def media_problems(ex: SFTExample) -> list[str]:
    """Everything wrong with one record's media, each line naming the record."""
    where = str(ex.origin) if ex.origin else "record"
    out = []
    n_img, n_vid = placeholder_counts(ex)
    for kind, n_marks, files, mark in (("image", n_img, ex.images, IMAGE_PLACEHOLDER),
                                       ("video", n_vid, ex.videos, VIDEO_PLACEHOLDER)):
        if n_marks != len(files):
            fix = (f"add {len(files) - n_marks} {mark} to the user turn(s)" if n_marks < len(files)
                   else f"remove {n_marks - len(files)} {mark} or list that many more files")
            out.append(f"{where}: {n_marks} {mark} placeholder(s) but {len(files)} {kind} file(s); {fix} "
                       f"(each {mark} marks where one {kind} goes, in order)")
    for path in ex.images:
        if problem := _image_problem(path):
            out.append(f"{where}: image {path} {problem}")
    for path in ex.videos:
        if not (Path(path).is_file() or Path(path).is_dir()):
            out.append(f"{where}: video {path} not found")
    return out


def check_media(examples: list[Example], *, name: str = "dataset") -> None:
    """Raise one DataFormatError listing every media problem (missing / unreadable files, placeholder
    counts that differ from the media counts)."""
    problems = [p for ex in examples if isinstance(ex, SFTExample) for p in media_problems(ex)]
    if not problems:
        return
    shown = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise DataFormatError(
        f"{name}: {len(problems)} media problem(s):\n  {shown}{more}",
        hint="relative paths are looked up under media_dir (image_folder) when set, else beside the dataset "
        "file; fix the files or the records, or remove those records",
    )
