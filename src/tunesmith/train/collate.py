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


@dataclass
class VisionCollator:
    """PadCollator plus the images / videos of each row (named in its ``media`` field) through the
    model's processor: ``pixel_values`` + ``image_grid_thw``, ``pixel_values_videos`` +
    ``video_grid_thw``, and ``mm_token_type_ids`` (1 image, 2 video) for Qwen2-VL's 3-D positions.
    Images are read here, one batch at a time, so a dataset never holds its pixels in memory."""

    pad_token_id: int
    processor: Any
    image_token_id: int
    video_token_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import json

        from PIL import Image

        batch = PadCollator(self.pad_token_id)([{k: r[k] for k in ("input_ids", "labels")} for r in rows])
        media = [json.loads(r.get("media") or "{}") for r in rows]
        images = [p for m in media for p in m.get("images", [])]
        videos = [p for m in media for p in m.get("videos", [])]
        ids = batch["input_ids"]
        if images:
            pics = []
            for path in images:
                with Image.open(path) as img:
                    pics.append(img.convert("RGB"))
            batch.update(self.processor.process_images(pics))
            self._check(ids, self.image_token_id, batch["image_grid_thw"], "image")
        if videos:
            batch.update(self.processor.process_videos(videos))
            self._check(ids, self.video_token_id, batch["video_grid_thw"], "video")
        if images or videos:
            kinds = torch.zeros_like(ids)
            kinds[ids == self.image_token_id] = 1
            kinds[ids == self.video_token_id] = 2
            batch["mm_token_type_ids"] = kinds
            if "attention_mask" not in batch:
                batch["attention_mask"] = torch.ones_like(ids)
        return batch

    def _check(self, ids: torch.Tensor, token_id: int, grids: torch.Tensor, kind: str) -> None:
        want = int(sum(int(g.prod()) for g in grids)) // self.processor.merge_size ** 2
        have = int((ids == token_id).sum())
        if want != have:
            from tunesmith.utils.errors import TrainingError

            raise TrainingError(f"a batch has {have} {kind} tokens for {want} {kind} features",
                                hint="the processor settings changed between tokenizing and training; rerun")
