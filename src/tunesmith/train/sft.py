"""Supervised fine-tuning, top to bottom: data, model, trainer, train, save."""

from __future__ import annotations

import time

from tunesmith.config.schema import Config
from tunesmith.model.load import load_tokenizer
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
from tunesmith.utils.hardware import release_memory


def run_sft(cfg: Config) -> RunResult:
    """Train an instruction-following model on conversations; returns the run's result."""
    started = time.time()
    set_threads(cfg)
    splits = load_splits(cfg)  # data errors surface before the model loads
    model_path, adapter_path = resolve_base(cfg)
    tokenizer = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
    template = resolve_template(cfg, model_path, tokenizer)
    train_rows, val_rows, stats = build_sft_rows(splits, template, tokenizer, cfg)
    checkpoint = resolve_checkpoint(cfg)
    pad_id = tokenizer.pad_token_id
    del tokenizer  # not needed while training; frees ~300 MB for a 262k vocabulary
    release_memory()
    prepare_output_dir(cfg)  # nothing is written before this point
    model = load_for_training(cfg, model_path, adapter_path=adapter_path)
    trainer, _ = build_trainer(cfg, model, pad_id, train_rows, val_rows)
    trainer.train(resume_from_checkpoint=checkpoint)
    tokenizer = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
    return finish_run(cfg, trainer, tokenizer, template, started=started, extra={
        "train_examples": len(splits.train),
        "val_examples": len(splits.val),
        "test_examples": len(splits.test),
        "train_rows": len(train_rows),
        "truncated_examples": stats["train"].n_truncated,
        "loss_token_share": round(stats["train"].loss_share, 4),
    })
