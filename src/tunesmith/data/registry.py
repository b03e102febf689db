"""The dataset registry: LLaMA-Factory's ``dataset_info.json``, read unchanged.

An entry looks like ``{"my_data": {"file_name": "my.json", "formatting": "sharegpt",
"columns": {"messages": "conversations"}, "tags": {...}, "ranking": false}}``. A dataset may also be
named by a file path directly; its format is then detected from its fields.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.data.formats import Columns, convert_records
from tunesmith.data.readers import read_records, read_text
from tunesmith.data.records import Example
from tunesmith.utils.console import note_once
from tunesmith.utils.errors import DataFormatError

REGISTRY_FILE = "dataset_info.json"
_ENTRY_KEYS = {"file_name", "formatting", "ranking", "columns", "tags", "split", "num_samples", "subset",
               "folder", "hf_hub_url", "ms_hub_url", "script_url", "load_from", "description"}


@dataclass
class DatasetSpec:
    """One resolved dataset: where its file is and how to read it."""

    name: str
    path: Path
    formatting: str | None = None
    ranking: bool = False
    columns: Columns = field(default_factory=Columns)
    num_samples: int | None = None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _second_line(text: str, key: str) -> int:
    """The line of the second ``"key":`` in the text (where a duplicate key is)."""
    hits = [m.start() for m in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
    return text.count("\n", 0, hits[1]) + 1 if len(hits) > 1 else 1


def read_registry(dataset_dir: str | Path) -> dict[str, Any]:
    """Read dataset_dir/dataset_info.json ({} when absent); a key given twice is an error, not
    "the last one wins"."""
    path = Path(dataset_dir) / REGISTRY_FILE
    if not path.exists():
        return {}
    text = read_text(path)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
                              hint="fix the syntax at that line (a missing comma or quote is the usual cause)"
                              ) from exc
    except _DuplicateKey as exc:
        raise DataFormatError(f"{path}:{_second_line(text, exc.key)}: the key {exc.key!r} appears twice; "
                              "only one of them would be used",
                              hint="rename one of the entries or delete the one you do not mean") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: must map dataset names to entries",
                              hint='write {"my_data": {"file_name": "my.json"}}')
    return data


_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "file_name": str, "formatting": str, "ranking": bool, "columns": dict, "tags": dict, "num_samples": int,
}


# LLaMA-Factory column names for inputs tunesmith does not train on (tools, images, audio, video).
_UNSUPPORTED_COLUMNS = {"tools": "tool definitions are not part of tunesmith's templates",
                        "audios": "tunesmith trains text and image / video models, not audio"}
_HUB_ONLY_KEYS = ("split", "subset", "folder")


def _check_mapping_names(name: str, key: str, mapping: dict[str, str], registry_path: Path) -> None:
    """Every name in 'columns' / 'tags' is one tunesmith reads; a typo would silently map nothing."""
    valid = sorted(f for f in Columns.__dataclass_fields__ if f != "explicit")
    for k, column in mapping.items():
        if k in _UNSUPPORTED_COLUMNS:
            note_once(f"registry:{registry_path}:{name}:{key}.{k}",
                      f"{registry_path}: dataset '{name}': '{key}.{k}' ({column!r}) is ignored: "
                      f"{_UNSUPPORTED_COLUMNS[k]}")
        elif k not in valid:
            close = difflib.get_close_matches(k, valid, n=1)
            raise DataFormatError(
                f"{registry_path}: dataset '{name}': '{key}.{k}' is not a name tunesmith reads"
                + (f"; did you mean '{close[0]}'?" if close else ""),
                hint=f"names: {', '.join(valid)}")


def _check_entry(name: str, entry: Any, dataset_dir: Path, registry_path: Path) -> None:
    """Types of the entry's values, and a file_name that stays inside dataset_dir."""
    if not isinstance(entry, dict):
        raise DataFormatError(f"{registry_path}: dataset '{name}' must be an object, got {type(entry).__name__}",
                              hint='write "' + name + '": {"file_name": "my.json"}')
    for key, kind in _ENTRY_TYPES.items():
        value = entry.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise DataFormatError(f"{registry_path}: dataset '{name}': '{key}' must be a {kind.__name__}, "  # type: ignore[union-attr]
                                  f"got {type(value).__name__} {value!r:.60}", hint="see the README's Data section")
    for key in ("columns", "tags"):
        bad = [k for k, v in (entry.get(key) or {}).items() if not isinstance(v, str)]
        if bad:
            raise DataFormatError(f"{registry_path}: dataset '{name}': '{key}.{bad[0]}' must be a column name "
                                  "(a string)", hint='e.g. "columns": {"prompt": "question"}')
        _check_mapping_names(name, key, entry.get(key) or {}, registry_path)
    for key in _HUB_ONLY_KEYS:
        if entry.get(key) is not None and not (key == "split" and entry[key] == "train"):
            note_once(f"registry:{registry_path}:{name}:{key}",
                      f"{registry_path}: dataset '{name}': '{key}: {entry[key]}' is ignored: it selects part of a "
                      "hub dataset, and tunesmith reads the whole local file_name (split it into files, or use "
                      "eval_dataset / test_dataset / val_size)")
    file_name = entry.get("file_name")
    if file_name is not None:
        inside = os.path.normpath(os.path.join(dataset_dir, file_name))
        if os.path.isabs(file_name) or os.path.relpath(inside, dataset_dir).split(os.sep)[0] == os.pardir:
            raise DataFormatError(
                f"{registry_path}: dataset '{name}': file_name {file_name!r} points outside {dataset_dir}",
                hint="move the file into dataset_dir, or give its path directly as dataset: PATH",
            )


def _spec_from_entry(name: str, entry: dict[str, Any], dataset_dir: Path, registry_path: Path) -> DatasetSpec:
    _check_entry(name, entry, dataset_dir, registry_path)
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise DataFormatError(f"{registry_path}: dataset '{name}' has unknown keys {sorted(unknown)}",
                              hint=f"valid keys: {', '.join(sorted(_ENTRY_KEYS))}")
    if "file_name" not in entry:
        if "hf_hub_url" in entry or "ms_hub_url" in entry:
            raise DataFormatError(
                f"{registry_path}: dataset '{name}' is on a hub ({entry.get('hf_hub_url') or entry.get('ms_hub_url')}),"
                " which needs network access",
                hint="download the files and point 'file_name' at them",
            )
        raise DataFormatError(f"{registry_path}: dataset '{name}' has no 'file_name'")
    formatting = entry.get("formatting")
    if formatting is None and entry.get("columns"):
        formatting = "alpaca"  # LLaMA-Factory's default when columns are mapped
    if formatting not in (None, "alpaca", "sharegpt", "openai", "auto"):
        raise DataFormatError(f"{registry_path}: dataset '{name}': unknown formatting {formatting!r}",
                              hint="use alpaca or sharegpt (as in LLaMA-Factory)")
    return DatasetSpec(
        name=name,
        path=dataset_dir / entry["file_name"],
        formatting=formatting,
        ranking=bool(entry.get("ranking", False)),
        columns=Columns.from_registry(entry.get("columns"), entry.get("tags")),
        num_samples=entry.get("num_samples"),
    )


def resolve_dataset(name: str, dataset_dir: str | Path) -> DatasetSpec:
    """A registry name or a file path -> DatasetSpec, with a 'did you mean' on unknown names."""
    dataset_dir = Path(dataset_dir)
    registry = read_registry(dataset_dir)
    if name in registry:
        return _spec_from_entry(name, registry[name], dataset_dir, dataset_dir / REGISTRY_FILE)
    for candidate in (Path(name), dataset_dir / name):
        if candidate.exists():
            return DatasetSpec(name=candidate.stem, path=candidate)
    close = difflib.get_close_matches(name, list(registry), n=1)
    known = ", ".join(sorted(registry)) or "none"
    hint = f"did you mean '{close[0]}'?" if close else f"datasets in {dataset_dir / REGISTRY_FILE}: {known}"
    raise DataFormatError(f"dataset '{name}' is neither in {dataset_dir / REGISTRY_FILE} nor a file", hint=hint)


def load_examples(name: str, dataset_dir: str | Path, max_samples: int | None = None) -> list[Example]:
    """Read and convert one dataset (registry name or path) into canonical examples."""
    spec = resolve_dataset(name, dataset_dir)
    records = read_records(spec.path)
    limit = max_samples or spec.num_samples
    if limit:
        records = records[:limit]
    return convert_records(records, formatting=spec.formatting, ranking=spec.ranking, columns=spec.columns)
