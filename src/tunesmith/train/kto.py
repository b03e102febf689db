"""KTO on single answers with a thumbs-up / thumbs-down tag, top to bottom.

Data is ``instruction``, ``output``, ``kto_tag`` (true/false), as in the notes. TRL's ``KTOTrainer`` needs a
reference model: with LoRA it is the frozen base with the adapter switched off (no second copy in
memory); with full tuning its log-probs are precomputed before training. KTO estimates its KL term from
mismatched answers inside each batch, so batches are taken in a fixed order (shuffled once with the
seed) and need at least two examples.
"""

from __future__ import annotations

import random
import time

from tunesmith.config.schema import Config
from tunesmith.data.preference import kto_record
from tunesmith.train.callbacks import JsonlLogger, read_log
from tunesmith.train.data import load_splits
from tunesmith.train.runner import RunResult, finish_run, prepare_output_dir, resolve_checkpoint, set_threads
from tunesmith.train.stop import StopOnSignal
from tunesmith.train.trl_setup import (
    drop_reference_adapter,
    examples_of,
    load_policy,
    load_text_side,
    probe,
    tokens_per_second,
    trl_args,
)
from tunesmith.utils.console import console

KTO_METRICS = {"rewards/margins": "reward_margin", "logps/chosen": "logps_desirable",
               "logps/rejected": "logps_undesirable", "kl": "kl"}
PROBE_EXAMPLES = 64


def _check(cfg: Config, train: list[dict]) -> None:
    # The batch size (at least 2) is checked with the config, before any stage runs (config/load.py).
    n_good = sum(r["label"] for r in train)
    if n_good in (0, len(train)):
        console.print(f"[yellow]warning[/yellow]: every training example has kto_tag={bool(n_good)}; KTO learns "
                      "most from a mix of good and bad answers")


def run_kto(cfg: Config) -> RunResult:
    """Train on thumbs-up / thumbs-down answers; returns the run's result."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    started = time.time()
    set_threads(cfg)
    splits = load_splits(cfg)  # data errors surface before the model loads
    train = [kto_record(e) for e in examples_of("kto", splits.train, "kto")]
    random.Random(cfg.train.seed).shuffle(train)  # batches are then read in this fixed order
    val = [kto_record(e) for e in examples_of("kto", splits.val, "kto")] if splits.val else []
    _check(cfg, train)
    model_path, adapter_path, tokenizer, template = load_text_side(cfg)
    checkpoint = resolve_checkpoint(cfg)
    prepare_output_dir(cfg)  # nothing is written before this point
    full = cfg.finetune.finetuning_type != "lora"
    args = trl_args(cfg, KTOConfig, has_eval=bool(val), n_rows=len(train), max_length=cfg.data.cutoff_len,
                    beta=cfg.finetune.pref_beta, precompute_ref_log_probs=full, train_sampling_strategy="sequential")
    model, peft_config = load_policy(cfg, model_path, adapter_path)
    logger = JsonlLogger(cfg.train.output_dir, append=bool(checkpoint))
    trainer = KTOTrainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                         eval_dataset=Dataset.from_list(val or train[:PROBE_EXAMPLES]), processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[logger, StopOnSignal()])
    before = probe(trainer, KTO_METRICS)
    trainer.train(resume_from_checkpoint=checkpoint)
    after = probe(trainer, KTO_METRICS)
    drop_reference_adapter(trainer.model)
    return finish_run(cfg, trainer, tokenizer, template, started=started, extra={
        "pref_beta": cfg.finetune.pref_beta,
        "train_examples": len(train),
        "desirable": sum(r["label"] for r in train),
        "undesirable": sum(not r["label"] for r in train),
        "val_examples": len(val),
        "probe_split": "val" if val else f"train (first {min(PROBE_EXAMPLES, len(train))} examples)",
        "before": before,
        "after": after,
        "tokens_per_s": tokens_per_second(read_log(cfg.train.output_dir)),
    })
