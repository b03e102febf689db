"""What the TRL-based stages (rm, dpo, orpo, simpo, kto, grpo) share: tunesmith's keys mapped onto a TRL
config, the policy model with LoRA / full / freeze tuning, and before/after probes for the summary.

LoRA is handed to TRL as a ``peft_config`` on the plain base model, so TRL's reference model is the same
weights with the adapter switched off: no second copy in memory. Continuing from an earlier adapter
(multi-stage, ``continue_from``) makes TRL keep a small frozen copy of that adapter as the reference.
Full tuning precomputes the reference log-probs before the first step, again without a second model.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from tunesmith.config.schema import Config
from tunesmith.data.records import Example
from tunesmith.data.templates import Template, to_jinja
from tunesmith.model.adapters import apply_finetuning, count_parameters, lora_config
from tunesmith.model.load import load_model, load_tokenizer
from tunesmith.train.distributed import engine_arguments, world
from tunesmith.train.resolve import resolve_base, resolve_template
from tunesmith.train.steps import eval_steps
from tunesmith.utils.console import console, note_once
from tunesmith.utils.errors import DataFormatError

STAGE_DATA = {"pt": "text", "sft": "sft", "grpo": "sft", "rm": "preference", "dpo": "preference",
              "orpo": "preference", "simpo": "preference", "kto": "kto"}
_HINT = ("pick the stage that matches the data (sft/grpo: instructions or conversations; dpo/rm/orpo/simpo: "
         "chosen/rejected pairs; kto: kto_tag; pt: text)")


def examples_of(kind: str, examples: list[Example], stage: str) -> list[Any]:
    """The examples, after checking that every one is of the kind the stage trains on."""
    wrong = [e for e in examples if e.kind != kind]
    if wrong:
        raise DataFormatError(f"stage '{stage}' needs {kind} data, but {len(wrong)} record(s) are "
                              f"'{wrong[0].kind}' (first at {getattr(wrong[0], 'origin', None)})", hint=_HINT)
    if not examples:
        raise DataFormatError(f"stage '{stage}': the training split is empty", hint="check 'dataset' and 'max_samples'")
    return examples


def trl_args(cfg: Config, config_cls: type, *, has_eval: bool, n_rows: int, **extra: Any) -> Any:
    """A TRL config (a TrainingArguments subclass) from tunesmith's keys, fp32 on the CPU."""
    t = cfg.train
    if t.bf16:
        note_once("bf16-trl", f"bf16: true is ignored on stage {cfg.finetune.stage}: the TRL stages (rm, dpo, kto, "
                  "orpo, simpo, grpo) train in fp32 here; sft and pt use bf16")
    return config_cls(
        output_dir=t.output_dir,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps(cfg, n_rows, world().world_size) if has_eval else None,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=t.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,  # TRL defaults bf16 on, which fails on a CPU ("doesn't support bf16/gpu"); fp32 here
        gradient_checkpointing=t.gradient_checkpointing,
        **engine_arguments(cfg, cuda=torch.cuda.is_available()),  # trackers, DDP / FSDP2 / DeepSpeed
        disable_tqdm=os.environ.get("TUNESMITH_NO_PROGRESS") == "1",
        log_level="warning",
        dataloader_num_workers=0,
        **extra,
    )


def load_text_side(cfg: Config) -> tuple[str, str | None, Any, Template]:
    """(base model path, adapter to continue or None, tokenizer with tunesmith's template as Jinja, template)."""
    model_path, adapter_path = resolve_base(cfg)
    tokenizer = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
    template = resolve_template(cfg, model_path, tokenizer)
    tokenizer.chat_template = to_jinja(template)  # TRL renders conversations with it: same text as SFT and chat
    return model_path, adapter_path, tokenizer, template


def load_policy(cfg: Config, model_path: str, adapter_path: str | None, *, model: Any = None,
                task_type: str = "CAUSAL_LM") -> tuple[Any, Any]:
    """(model, peft_config for TRL or None). A fresh LoRA is left to TRL so its reference is the bare base."""
    if model is None:
        model = load_model(model_path, dtype=torch.float32, trust_remote_code=cfg.model.trust_remote_code)
    model.config.use_cache = False
    ft = cfg.finetune
    if ft.finetuning_type == "lora" and adapter_path is None:
        peft_config = lora_config(model, ft, task_type=task_type)
        if task_type == "SEQ_CLS":
            peft_config.modules_to_save = ["score"]  # the reward head is new: it trains in full
        ref = "; the reference model is the base with the adapter switched off" if ft.stage in ("dpo", "kto") else ""
        console.print(f"[bold]lora[/bold] r={ft.lora_rank} on the frozen base{ref}")
        return model, peft_config
    model = apply_finetuning(model, ft, adapter_path=adapter_path)
    trainable, total = count_parameters(model)
    console.print(f"[bold]{ft.finetuning_type}[/bold]: training {trainable:,} of {total:,} parameters "
                  f"({100 * trainable / total:.2f}%), fp32")
    return model, None


def drop_reference_adapter(model: Any) -> None:
    """TRL keeps a frozen copy of a continued adapter named 'ref'; the run folder stores only the trained one."""
    if hasattr(model, "peft_config") and "ref" in model.peft_config:
        model.delete_adapter("ref")
        model.set_adapter("default")


def probe(trainer: Any, keys: dict[str, str]) -> dict[str, float]:
    """Evaluate on the trainer's eval set and keep ``keys`` (TRL metric name -> our name)."""
    metrics = trainer.evaluate()
    out = {ours: round(float(metrics[f"eval_{theirs}"]), 4) for theirs, ours in keys.items()
           if f"eval_{theirs}" in metrics}
    if {"eval_logps/chosen", "eval_logps/rejected"} <= set(metrics):  # chosen-vs-rejected log-prob gap
        out["logp_gap"] = round(float(metrics["eval_logps/chosen"] - metrics["eval_logps/rejected"]), 4)
    return out


def tokens_per_second(rows: list[dict[str, Any]]) -> float | None:
    """Training tokens per second from TRL's cumulative ``num_tokens`` and the run time."""
    tokens = [r["num_tokens"] for r in rows if "num_tokens" in r and "eval_loss" not in r]
    runtime = [r["train_runtime"] for r in rows if "train_runtime" in r]
    if tokens and runtime and runtime[-1]:
        return round(tokens[-1] / runtime[-1], 1)
    return None
