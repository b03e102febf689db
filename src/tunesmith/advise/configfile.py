"""Write a recommended config: the user's YAML with some values changed, comments and order kept.

Top-level ``key: value`` lines are edited in place (the old value is noted in a comment); keys the
file does not have are appended under a marker comment. A config written in the grouped form
(``train: {learning_rate: ...}``) is re-dumped instead, which loses its comments. The result is
validated like any config before it is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config.load import build_config
from tunesmith.config.schema import GROUPS
from tunesmith.utils.io import write_text


def yaml_scalar(value: Any) -> str:
    """A value as YAML writes it on one line (1e-05 -> 1.0e-05, which YAML reads back as a float)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n...\n").strip()


def _line_pattern(key: str) -> re.Pattern[str]:
    return re.compile(rf"^(?P<head>{re.escape(key)}\s*:[ \t]*)(?P<value>[^#\n]*?)(?P<tail>[ \t]*#.*)?$", re.MULTILINE)


def patch_yaml_text(text: str, changes: dict[str, Any], *, note: str = "tunesmith advise") -> str:
    """Apply ``changes`` (flat keys) to YAML text, keeping everything else as written."""
    data = yaml.safe_load(text) or {}
    if any(group in data for group in GROUPS):
        flat = {k: v for k, v in data.items() if k not in GROUPS}
        for group in GROUPS:
            flat.update(data.get(group) or {})
        flat.update(changes)
        return f"# written by {note}\n" + yaml.safe_dump(flat, allow_unicode=True, sort_keys=False)
    added = []
    for key, value in changes.items():
        pattern = _line_pattern(key)
        match = pattern.search(text)
        if match is None:
            added.append(f"{key}: {yaml_scalar(value)}")
            continue
        old = match.group("value").strip()
        if yaml.safe_load(old or "null") == value:
            continue
        comment = match.group("tail") or ""
        comment = f"{comment}  (was {old})" if comment else f"  # {note}: was {old}"
        text = text[:match.start()] + f"{match.group('head')}{yaml_scalar(value)}{comment}" + text[match.end():]
    if added:
        text = text.rstrip("\n") + f"\n\n# added by {note}\n" + "\n".join(added) + "\n"
    return text


def write_recommended(config_path: str | Path, changes: dict[str, Any], out: str | Path, *,
                      note: str = "tunesmith advise") -> Path:
    """Write the config at ``config_path`` with ``changes`` to ``out``; the result must load."""
    text = Path(config_path).read_text(encoding="utf-8")
    new_text = patch_yaml_text(text, changes, note=note)
    out = Path(out)
    build_config(dict(yaml.safe_load(new_text) or {}), source=str(out))  # never write a config that fails
    if out.resolve().parent != Path(config_path).resolve().parent:
        new_text = _rebase_dataset_dir(new_text, Path(config_path).parent, out.parent)
    return write_text(out, new_text)


def _rebase_dataset_dir(text: str, src_dir: Path, out_dir: Path) -> str:
    """Keep a relative dataset_dir pointing at the same folder when the config moves."""
    data = yaml.safe_load(text) or {}
    value = data.get("dataset_dir")
    if not isinstance(value, str) or Path(value).is_absolute():
        return text
    target = os.path.relpath((src_dir / value).resolve(), out_dir.resolve())
    return patch_yaml_text(text, {"dataset_dir": target})
