"""Find training runs and datasets on disk, for the UI's pickers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.data.records import to_dict
from tunesmith.data.registry import load_examples, read_registry

RUN_MARKERS = ("adapter_config.json", "tunesmith_run.yaml", "config.json")


def is_run_dir(path: Path) -> bool:
    """A folder a model can be loaded from: an adapter, a tunesmith run, or a model folder."""
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


def find_runs(*roots: str | Path, extra: list[str | Path] | None = None) -> list[str]:
    """Run folders directly in ``roots`` (and one level below), plus ``extra`` ones; newest first."""
    found: dict[str, float] = {}
    candidates = [Path(p) for p in (extra or [])]
    for root in map(Path, roots):
        if root.is_dir():
            candidates += [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
            candidates += [p for p in root.glob("*/*") if p.is_dir() and not p.name.startswith(("checkpoint-", "."))]
    for path in candidates:
        if is_run_dir(path) and not path.name.startswith("checkpoint-"):
            found[str(path)] = path.stat().st_mtime
    return sorted(found, key=lambda p: found[p], reverse=True)


def dataset_names(dataset_dir: str | Path) -> list[str]:
    """Registry names in dataset_dir/dataset_info.json, then data files in the folder."""
    d = Path(dataset_dir)
    try:
        names = list(read_registry(d))
    except Exception:  # noqa: BLE001 - a broken registry is reported by preview/check, not here
        names = []
    if d.is_dir():
        files = sorted(p.name for p in d.iterdir()
                       if p.suffix in (".json", ".jsonl", ".csv", ".parquet", ".txt") and p.name != "dataset_info.json")
        names += [f for f in files if f not in names]
    return names


def preview_rows(name: str, dataset_dir: str | Path, limit: int = 20) -> tuple[int, list[str], list[dict[str, Any]]]:
    """(number of examples, their kinds, the first ``limit`` as table rows) of a dataset."""
    examples = load_examples(name, dataset_dir)
    kinds = sorted({e.kind for e in examples})
    rows = []
    for ex in examples[:limit]:
        d = to_dict(ex)
        msgs = d.get("messages", [])
        users = [m["content"] for m in msgs if m["role"] == "user"]
        answers = [m["content"] for m in msgs if m["role"] == "assistant"]
        rows.append({
            "format": ex.kind,
            "system": next((m["content"] for m in msgs if m["role"] == "system"), ""),
            "prompt": users[0] if users else d.get("text", ""),
            "answer": d.get("chosen") or d.get("completion") or (answers[-1] if answers else ""),
            "rejected": d.get("rejected", ""),
            "turns": len(users),
            "images": len(d.get("images", [])) + len(d.get("videos", [])) or "",
        })
    return len(examples), kinds, rows


def preview_images(name: str, dataset_dir: str | Path, media_dir: str | None = None, limit: int = 20
                   ) -> list[tuple[str, str]]:
    """(path, caption) of the images in the first ``limit`` records, paths resolved as training resolves
    them (under media_dir, else beside the data file); missing files are left out (data check names them)."""
    from tunesmith.data.media import resolve_media
    from tunesmith.data.records import SFTExample

    examples = resolve_media(load_examples(name, dataset_dir)[:limit], media_dir)
    return [(p, f"{ex.origin}: {Path(p).name}") for ex in examples if isinstance(ex, SFTExample)
            for p in ex.images if Path(p).is_file()]
