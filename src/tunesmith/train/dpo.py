"""Preference learning on chosen/rejected pairs, top to bottom: DPO (sigmoid, ipo, hinge), SimPO and ORPO.

``stage: dpo`` with ``pref_loss`` picks the loss; ``stage: orpo`` and ``stage: simpo`` are shorthands.
DPO runs on TRL's ``DPOTrainer`` and needs a reference model: with LoRA it is the frozen base with the
adapter switched off (no second copy in memory). SimPO and ORPO need no reference at all; they run on
TRL's ``CPOTrainer`` (loss ``simpo``) and ``ORPOTrainer``, which TRL 1.x keeps under ``trl.experimental``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.preference import preference_record
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

PAIR_METRICS = {"rewards/accuracies": "reward_accuracy", "rewards/margins": "reward_margin",
                "logps/chosen": "logps_chosen", "logps/rejected": "logps_rejected"}
PROBE_PAIRS = 64  # pairs scored before and after training when there is no validation split


def pref_loss(cfg: Config) -> str:
    """The loss a config asks for: stage orpo/simpo win over pref_loss."""
    return cfg.finetune.stage if cfg.finetune.stage in ("orpo", "simpo") else cfg.finetune.pref_loss


def _trainer_class(loss: str, cfg: Config, rows: int, has_eval: bool) -> tuple[type, Any]:
    """(TRL trainer class, its config) for the chosen loss."""
    common = {"max_length": cfg.data.cutoff_len, "beta": cfg.finetune.pref_beta}
    if loss in ("sigmoid", "ipo", "hinge"):
        from trl import DPOConfig, DPOTrainer

        full = cfg.finetune.finetuning_type != "lora"
        # Full tuning: reference log-probs are computed once before training, so no second model stays loaded.
        return DPOTrainer, trl_args(cfg, DPOConfig, has_eval=has_eval, n_rows=rows, loss_type=[loss],
                                    precompute_ref_log_probs=full, **common)
    with warnings.catch_warnings():  # the "experimental API" notice; the choice is documented above
        warnings.simplefilter("ignore")
        if loss == "simpo":
            from trl.experimental.cpo import CPOConfig, CPOTrainer

            return CPOTrainer, trl_args(cfg, CPOConfig, has_eval=has_eval, n_rows=rows, loss_type="simpo",
                                        cpo_alpha=0.0, simpo_gamma=cfg.finetune.simpo_gamma, **common)
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer, trl_args(cfg, ORPOConfig, has_eval=has_eval, n_rows=rows, **common)


def run_dpo(cfg: Config) -> RunResult:
    """Train on preference pairs with the configured loss; returns the run's result."""
    from datasets import Dataset

    started = time.time()
    set_threads(cfg)
    stage = cfg.finetune.stage
    splits = load_splits(cfg)  # data errors surface before the model loads
    train = [preference_record(e) for e in examples_of("preference", splits.train, stage)]
    val = [preference_record(e) for e in examples_of("preference", splits.val, stage)] if splits.val else []
    model_path, adapter_path, tokenizer, template = load_text_side(cfg)
    checkpoint = resolve_checkpoint(cfg)
    prepare_output_dir(cfg)  # nothing is written before this point
    loss = pref_loss(cfg)
    trainer_cls, args = _trainer_class(loss, cfg, len(train), bool(val))
    model, peft_config = load_policy(cfg, model_path, adapter_path)
    logger = JsonlLogger(cfg.train.output_dir, append=bool(checkpoint))
    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(train),
                          eval_dataset=Dataset.from_list(val or train[:PROBE_PAIRS]), processing_class=tokenizer,
                          peft_config=peft_config, callbacks=[logger, StopOnSignal()])
    before = probe(trainer, PAIR_METRICS)
    trainer.train(resume_from_checkpoint=checkpoint)
    after = probe(trainer, PAIR_METRICS)
    drop_reference_adapter(trainer.model)
    return finish_run(cfg, trainer, tokenizer, template, started=started, extra={
        "pref_loss": loss,
        "pref_beta": cfg.finetune.pref_beta,
        "trainer": trainer_cls.__name__,
        "reference": _reference(loss, cfg, adapter_path),
        "train_examples": len(train),
        "val_examples": len(splits.val),
        "probe_split": "val" if val else f"train (first {min(PROBE_PAIRS, len(train))} pairs)",
        "before": before,
        "after": after,
        "tokens_per_s": tokens_per_second(read_log(cfg.train.output_dir)),
    })


def _reference(loss: str, cfg: Config, adapter_path: str | None) -> str:
    if loss in ("simpo", "orpo"):
        return "none (reference-free loss)"
    if cfg.finetune.finetuning_type != "lora":
        return "the starting weights, log-probs precomputed before training"
    return f"frozen copy of the adapter in {adapter_path}" if adapter_path else "the base with the adapter off"
