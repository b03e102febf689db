"""The processor-aware part of sft for vision-language models: media checked, records tokenized with
their vision tokens, the batch collator that reads the images. The training itself is the one runner's
(train/runner.py); this module only prepares what it is handed."""

from __future__ import annotations

import json
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.media import check_media, resolve_media
from tunesmith.data.records import SFTExample
from tunesmith.data.templates import Template
from tunesmith.data.tokenize import EncodeStats
from tunesmith.data.vision import cutoff_problem, encode_vision_sft, raise_cutoff_problems
from tunesmith.train.collate import VisionCollator
from tunesmith.train.data import Splits, _examples_of, encode_sft_rows, report_stats
from tunesmith.utils.console import console
from tunesmith.utils.errors import TrainingError


def prepare_media(splits: Splits, cfg: Config) -> None:
    """Resolve media paths and check every media record (before the model loads)."""
    for name, examples in (("training data", splits.train), ("validation data", splits.val),
                           ("test data", splits.test)):
        resolve_media(examples, cfg.data.media_folder)
        check_media(examples, name=name)


def encode_vision_rows(examples: list[SFTExample], template: Template, processor: Any, cfg: Config,
                       ) -> tuple[list[dict[str, Any]], EncodeStats, int]:
    """Rows for media records (ids, labels, media as JSON), text-only records as in text sft; the
    stats and the number of vision tokens."""
    media = [e for e in examples if e.images or e.videos]
    text_rows, stats = encode_sft_rows([e for e in examples if not (e.images or e.videos)], template,
                                       processor.tokenizer, cfg) if len(media) < len(examples) else ([], EncodeStats())
    rows: list[dict[str, Any]] = [{**r, "media": "{}"} for r in text_rows]
    problems, needed, n_vision = [], 0, 0
    for ex in media:
        enc = encode_vision_sft(ex, template, processor, train_on_prompt=cfg.data.train_on_prompt,
                                mask_history=cfg.data.mask_history)
        if problem := cutoff_problem(enc, cfg.data.cutoff_len):
            problems.append(problem)
            needed = max(needed, enc.full_length)
            continue
        stats.add(enc.encoded, enc.full_length)
        n_vision += enc.n_vision_tokens
        if enc.encoded.n_label_tokens:
            rows.append({"input_ids": enc.encoded.input_ids, "labels": enc.encoded.labels,
                         "media": json.dumps({"images": ex.images, "videos": ex.videos})})
    raise_cutoff_problems(problems, cfg.data.cutoff_len, needed)
    if examples and not rows:
        raise TrainingError("every example has all of its labels masked: there is nothing to learn from",
                            hint="check that answers are not empty")
    return rows, stats, n_vision


def build_vision_rows(splits: Splits, template: Template, processor: Any, cfg: Config,
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, EncodeStats]]:
    """Train and validation rows for a vision-language sft run (never packed)."""
    train_ex = _examples_of("sft", splits.train, "sft")
    val_ex = _examples_of("sft", splits.val, "sft")
    train_rows, train_stats, n_vision = encode_vision_rows(train_ex, template, processor, cfg)
    val_rows, val_stats, _ = encode_vision_rows(val_ex, template, processor, cfg) if val_ex else ([], EncodeStats(), 0)
    report_stats("training", train_stats, cfg.data.cutoff_len)
    n_media = sum(1 for e in train_ex if e.images or e.videos)
    console.print(f"vision: {n_media} of {len(train_ex)} training records carry media, "
                  f"{n_vision:,} vision tokens; processor: {processor.source}")
    if cfg.data.packing:
        console.print("[dim]packing: off for vision-language data (each row keeps its own images and 3-D "
                      "positions)[/dim]")
    return train_rows, val_rows, {"train": train_stats, "val": val_stats}


def vision_collator(processor: Any) -> VisionCollator:
    tok = processor.tokenizer
    return VisionCollator(tok.pad_token_id, processor, tok.convert_tokens_to_ids(processor.image_token),
                          tok.convert_tokens_to_ids(processor.video_token))


def refuse_media(examples: list[Any], model_path: str) -> None:
    """Media records given to a text-only model: the images would be dropped without a word."""
    from tunesmith.data.media import has_media
    from tunesmith.utils.errors import DataFormatError

    first = next(e for e in examples if has_media(e))
    n = sum(1 for e in examples if has_media(e))
    raise DataFormatError(f"{n} record(s) carry images / video (first at {first.origin}), but {model_path} is a "
                          "text-only model", hint="train a vision-language model (e.g. Qwen/Qwen2-VL-2B-Instruct), "
                          "or remove the image / video fields")
