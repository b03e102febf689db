"""Supervised fine-tuning, top to bottom: data, model, trainer, train, save."""

from __future__ import annotations

import time

from tunesmith.config.schema import Config
from tunesmith.data.media import has_media
from tunesmith.model.load import load_tokenizer
from tunesmith.model.vision import is_vision_model, load_processor
from tunesmith.train.data import build_sft_rows, load_splits
from tunesmith.train.resolve import resolve_base, resolve_template
from tunesmith.train.runner import (
    RunResult,
    build_trainer,
    finish_run,
    load_for_training,
    prepare_output_dir,
    resolve_checkpoint,
    set_threads,
)
from tunesmith.train.vision import build_vision_rows, prepare_media, refuse_media, vision_collator
from tunesmith.utils.hardware import release_memory


def run_sft(cfg: Config) -> RunResult:
    """Train an instruction-following model on conversations; returns the run's result."""
    started = time.time()
    set_threads(cfg)
    splits = load_splits(cfg)  # data errors surface before the model loads
    model_path, adapter_path = resolve_base(cfg)
    remote = cfg.model.trust_remote_code
    # A vision-language model is read through its processor; the rest of the run is the same.
    processor = load_processor(model_path, cfg.data, trust_remote_code=remote) \
        if is_vision_model(model_path, trust_remote_code=remote) else None
    if processor is not None:
        prepare_media(splits, cfg)
    elif any(has_media(e) for e in splits.train):
        refuse_media(splits.train, model_path)
    tokenizer = processor.tokenizer if processor else load_tokenizer(model_path, trust_remote_code=remote)
    template = resolve_template(cfg, model_path, tokenizer)
    if processor is not None:
        train_rows, val_rows, stats = build_vision_rows(splits, template, processor, cfg)
    else:
        train_rows, val_rows, stats = build_sft_rows(splits, template, tokenizer, cfg)
    checkpoint = resolve_checkpoint(cfg)
    pad_id = tokenizer.pad_token_id
    del tokenizer  # not needed while training; frees ~300 MB for a 262k vocabulary
    release_memory()
    prepare_output_dir(cfg)  # nothing is written before this point
    model = load_for_training(cfg, model_path, adapter_path=adapter_path)
    trainer, _ = build_trainer(cfg, model, pad_id, train_rows, val_rows,
                               collator=vision_collator(processor) if processor else None)
    trainer.train(resume_from_checkpoint=checkpoint)
    tokenizer = processor.tokenizer if processor else load_tokenizer(model_path, trust_remote_code=remote)
    return finish_run(cfg, trainer, tokenizer, template, started=started, processor=processor, extra={
        "train_examples": len(splits.train),
        "val_examples": len(splits.val),
        "test_examples": len(splits.test),
        "train_rows": len(train_rows),
        "truncated_examples": stats["train"].n_truncated,
        "loss_token_share": round(stats["train"].loss_share, 4),
    })
