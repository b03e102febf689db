"""Continued pre-training on plain text, top to bottom: documents packed into cutoff_len blocks, every
token trained, held-out perplexity before and after.

Text comes from a ``text`` column or ``.txt`` files (blank-line-separated documents). Documents are
concatenated and cut into ``cutoff_len`` blocks whose positions restart at each document, so attention
never crosses from one document into the next. It runs on the same fast loss as SFT.
"""

from __future__ import annotations

import math
import time

from tunesmith.config.schema import Config
from tunesmith.model.load import load_tokenizer
from tunesmith.train.data import build_pt_rows, load_splits
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
from tunesmith.train.trl_setup import examples_of
from tunesmith.utils.errors import DataFormatError


def _perplexity(trainer: object) -> dict[str, float]:
    loss = trainer.evaluate()["eval_loss"]  # type: ignore[attr-defined]
    return {"eval_loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50.0)), 2)}


def run_pt(cfg: Config) -> RunResult:
    """Pre-train (continue training) a causal LM on text; returns the run's result."""
    started = time.time()
    set_threads(cfg)
    splits = load_splits(cfg)  # data errors surface before the model loads
    examples_of("text", splits.train, "pt")
    model_path, adapter_path = resolve_base(cfg)
    tokenizer = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
    template = resolve_template(cfg, model_path, tokenizer)  # saved with the run for chat and export
    train_rows, val_rows = build_pt_rows(splits, tokenizer, cfg)
    if not train_rows:
        raise DataFormatError("the pre-training text is empty after tokenization", hint="check the 'text' fields")
    checkpoint = resolve_checkpoint(cfg)
    prepare_output_dir(cfg)  # nothing is written before this point
    model = load_for_training(cfg, model_path, adapter_path=adapter_path)
    trainer, _ = build_trainer(cfg, model, tokenizer, train_rows, val_rows)
    before = _perplexity(trainer) if val_rows else {}
    trainer.train(resume_from_checkpoint=checkpoint)
    after = _perplexity(trainer) if val_rows else {}
    return finish_run(cfg, trainer, tokenizer, template, started=started, extra={
        "train_documents": len(splits.train),
        "val_documents": len(splits.val),
        "train_blocks": len(train_rows),
        "train_tokens": sum(len(r["input_ids"]) for r in train_rows),
        "block_len": cfg.data.cutoff_len,
        "before": before,
        "after": after,
    })
