"""Reward model training on preference pairs, top to bottom, with pairwise accuracy before and after.

The model is the base LM with a one-number head (``AutoModelForSequenceClassification``, num_labels=1)
read at the last token of prompt + answer. TRL's ``RewardTrainer`` trains it so the chosen answer scores
above the rejected one; pairwise accuracy on the validation split (or on training pairs when there is
none) is the metric. Pairs are tokenized with tunesmith's template, exactly as SFT would render them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.preference import encode_pair
from tunesmith.train.callbacks import JsonlLogger, read_log
from tunesmith.train.data import load_splits
from tunesmith.train.runner import RunResult, finish_run, prepare_output_dir, resolve_checkpoint, set_threads
from tunesmith.train.stop import StopOnSignal
from tunesmith.train.trl_setup import examples_of, load_policy, load_text_side, probe, tokens_per_second, trl_args
from tunesmith.utils.console import console
from tunesmith.utils.errors import ConfigError

RM_METRICS = {"accuracy": "pairwise_accuracy", "margin": "reward_margin", "mean_reward": "mean_reward"}
PROBE_PAIRS = 64


def _encode(examples: list[Any], cfg: Config, template: Any, tokenizer: Any) -> list[dict[str, list[int]]]:
    rows, cut = [], 0
    for ex in examples:
        row, truncated = encode_pair(ex, template, tokenizer, cfg.data.cutoff_len)
        rows.append(row)
        cut += truncated
    if cut:
        console.print(f"[yellow]warning[/yellow]: {cut} of {len(examples)} pairs are longer than "
                      f"cutoff_len={cfg.data.cutoff_len}; their prompts were cut from the left")
    return rows


def _reward_model(cfg: Config, model_path: str, adapter_path: str | None) -> Any:
    """The base with a fresh scalar head (or a reward model being continued)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    if adapter_path and json.loads((Path(adapter_path) / "adapter_config.json").read_text()).get(
            "task_type") != "SEQ_CLS":
        raise ConfigError([f"'continue_from': {adapter_path!r} holds a chat (causal LM) adapter, not a reward model; "
                           "a reward model starts from base or fully tuned weights (merge the adapter first with "
                           "'tunesmith export', then point model_name_or_path at the merged folder)"])
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=1, dtype=torch.float32, trust_remote_code=cfg.model.trust_remote_code)
    return model


def run_rm(cfg: Config) -> RunResult:
    """Train a reward model on chosen/rejected pairs; returns the run's result."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    started = time.time()
    set_threads(cfg)
    splits = load_splits(cfg)  # data errors surface before the model loads
    train_ex = examples_of("preference", splits.train, "rm")
    val_ex = examples_of("preference", splits.val, "rm") if splits.val else []
    model_path, adapter_path, tokenizer, template = load_text_side(cfg)
    train, val = _encode(train_ex, cfg, template, tokenizer), _encode(val_ex, cfg, template, tokenizer)
    checkpoint = resolve_checkpoint(cfg)
    prepare_output_dir(cfg)  # nothing is written before this point
    base = _reward_model(cfg, model_path, adapter_path)
    model, peft_config = load_policy(cfg, model_path, adapter_path, model=base, task_type="SEQ_CLS")
    args = trl_args(cfg, RewardConfig, has_eval=bool(val), n_rows=len(train), max_length=cfg.data.cutoff_len)
    logger = JsonlLogger(cfg.train.output_dir, append=bool(checkpoint))
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                            eval_dataset=Dataset.from_list(val or train[:PROBE_PAIRS]), processing_class=tokenizer,
                            peft_config=peft_config, callbacks=[logger, StopOnSignal()])
    before = probe(trainer, RM_METRICS)
    trainer.train(resume_from_checkpoint=checkpoint)
    after = probe(trainer, RM_METRICS)
    return finish_run(cfg, trainer, tokenizer, template, started=started, extra={
        "train_pairs": len(train),
        "val_pairs": len(val),
        "probe_split": "val" if val else f"train (first {min(PROBE_PAIRS, len(train))} pairs)",
        "before": before,
        "after": after,
        "model_kind": "reward model (sequence classification, one score); not a chat model",
        "tokens_per_s": tokens_per_second(read_log(cfg.train.output_dir)),
    })
