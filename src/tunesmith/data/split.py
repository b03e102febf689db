"""Deterministic train / validation / test splits (the notes suggest 7 : 1.5 : 1.5)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TypeVar

from tunesmith.utils.errors import DataFormatError

T = TypeVar("T")


def parse_ratios(text: str) -> tuple[float, ...]:
    """'7,1.5,1.5' -> (0.7, 0.15, 0.15)."""
    try:
        parts = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise DataFormatError(f"--ratios {text!r}: expected numbers like 7,1.5,1.5") from exc
    if len(parts) not in (2, 3) or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise DataFormatError(f"--ratios {text!r}: give 2 or 3 non-negative numbers (train,val[,test])")
    total = sum(parts)
    return tuple(p / total for p in parts)


def split_items(items: list[T], ratios: tuple[float, ...], seed: int = 42) -> list[list[T]]:
    """Shuffle with ``seed`` and cut by ratios; every non-zero share gets at least one item."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n = len(items)
    counts = [int(round(r * n)) for r in ratios]
    for i, r in enumerate(ratios):
        if r > 0 and counts[i] == 0 and n >= len(ratios):
            counts[i] = 1
    counts[0] = n - sum(counts[1:])
    out, start = [], 0
    for c in counts:
        out.append([items[i] for i in sorted(order[start:start + c])])
        start += c
    return out


def split_names(path: Path, n: int) -> list[Path]:
    """data.json -> data.train.json, data.val.json, data.test.json (same extension)."""
    names = ["train", "val", "test"][:n]
    return [path.with_name(f"{path.stem}.{name}{path.suffix}") for name in names]
