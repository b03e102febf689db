"""Batching: pad to the longest row in the batch (never to cutoff_len), labels padded with -100."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tunesmith.data.tokenize import IGNORE_INDEX


@dataclass
class PadCollator:
    """Right-pads input_ids/labels; packed rows carry position_ids and need no attention mask."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            width = (width + m - 1) // m * m
        packed = "position_ids" in rows[0]
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
            if packed:
                pos[i, :n] = torch.tensor(r["position_ids"])
                pos[i, n:] = torch.arange(width - n)
        batch = {"input_ids": ids, "labels": labels}
        if packed:
            batch["position_ids"] = pos
        elif not bool(mask.all()):
            batch["attention_mask"] = mask
        return batch
