"""What every training stage shares: precision, output folder policy, model preparation, the
Trainer subclass with the fast loss, and the artifacts written at the end of a run."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments, set_seed

from tunesmith.config.load import dump_config
from tunesmith.config.schema import Config
from tunesmith.data.templates import Template, to_jinja
from tunesmith.model.adapters import (
    apply_finetuning,
    convert_rewriting_adapter,
    count_parameters,
    save_initial_adapter,
)
from tunesmith.model.load import end_token_ids
from tunesmith.model.peft_extras import add_tokens_to_tokenizer
from tunesmith.model.vision import apply_vision_finetuning, is_vision_config, parameter_groups, save_processor
from tunesmith.train.callbacks import JsonlLogger, read_log
from tunesmith.train.checkpoints import checkpoint_problem, holds_last_step, last_complete_checkpoint
from tunesmith.train.collate import PadCollator
from tunesmith.train.compile import compile_decoder_layers, decide, mark_compiled
from tunesmith.train.distributed import batch_report, engine_arguments, fast_loss_decision, global_batch_size, world
from tunesmith.train.fast import fast_causal_lm_loss, release_workspace, supports_fast_loss
from tunesmith.train.peft_setup import load_training_base, loraplus_optimizer
from tunesmith.train.plot import plot_loss
from tunesmith.train.resolve import RUN_CONFIG
from tunesmith.train.steps import eval_steps
from tunesmith.train.stop import StopOnSignal
from tunesmith.utils.console import console
from tunesmith.utils.errors import ConfigError
from tunesmith.utils.hardware import peak_rss_mb, physical_cores, resolve_bf16
from tunesmith.utils.io import write_json, write_text

SUMMARY = "summary.json"


@dataclass
class RunResult:
    """What a finished stage reports."""

    output_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    template: Template | None = None
    files: dict[str, str] = field(default_factory=dict)


def use_bf16(cfg: Config) -> bool:
    """bf16 compute for this run: the setting, but never emulated bf16 on a CPU without it."""
    return resolve_bf16(cfg.train.bf16)[0]


def set_threads(cfg: Config) -> None:
    # Processes launched on one node share its cores.
    torch.set_num_threads(cfg.train.num_threads or max(1, physical_cores() // world().local_world_size))


def prepare_output_dir(cfg: Config) -> Path:
    """Refuse to mix a new run into an old one; called only after data and config validated."""
    out = Path(cfg.train.output_dir)
    if not world().is_main:  # rank 0 checks and writes the run folder; the launcher checked before starting
        return out
    resuming = bool(cfg.train.resume_from_checkpoint)
    if out.exists() and any(out.iterdir()) and not (resuming or cfg.train.overwrite_output_dir):
        raise ConfigError([
            f"'output_dir': {str(out)!r} already holds files from another run; set overwrite_output_dir=true "
            "to replace them, resume_from_checkpoint=last to resume, or choose a new output_dir"
        ])
    out.mkdir(parents=True, exist_ok=True)
    # The run record marks a finished run (finish_run writes it last); from here on the folder's files change.
    (out / RUN_CONFIG).unlink(missing_ok=True)
    return out


def resolve_checkpoint(cfg: Config) -> str | None:
    ckpt = cfg.train.resume_from_checkpoint
    if not ckpt:
        return None
    size = world().world_size
    if ckpt in ("last", "latest", "true", "True"):
        last, torn = last_complete_checkpoint(cfg.train.output_dir, size)
        for folder, why in torn:  # e.g. killed while saving: resuming from it would fail or lose state
            console.print(f"[yellow]{folder.name} is incomplete ({why}): skipped[/yellow]")
        if last is None:
            found = f" (only incomplete ones: {', '.join(f.name for f, _ in torn)})" if torn else ""
            raise ConfigError([f"'resume_from_checkpoint': no complete checkpoint-N folder in "
                               f"{cfg.train.output_dir!r}{found}"])
        console.print(f"resuming from {last.name}")
        return str(last)
    if not Path(ckpt).is_dir():
        raise ConfigError([f"'resume_from_checkpoint': {ckpt!r} is not a folder"])
    if problem := checkpoint_problem(ckpt, size):
        raise ConfigError([f"'resume_from_checkpoint': {ckpt!r} is incomplete ({problem}); pick an earlier "
                           "checkpoint, or resume_from_checkpoint=last for the newest complete one"])
    return ckpt


def load_for_training(cfg: Config, model_path: str, *, adapter_path: str | None = None) -> Any:
    """Load the base model in the dtype that trains fastest and attach what trains."""
    bf16 = use_bf16(cfg)
    lora = cfg.finetune.finetuning_type == "lora"
    # Frozen LoRA base weights can live in bf16 (half the memory, twice the matmul speed here);
    # weights that train stay fp32 and bf16 is applied by autocast.
    dtype = torch.bfloat16 if (bf16 and lora) else torch.float32
    model = load_training_base(cfg, model_path, dtype)  # QLoRA (quantization_bit), rope_scaling, new tokens
    model.config.use_cache = False
    # `seed` decides the LoRA initialization too: the Trainer seeds only when it is built, after the
    # adapter exists, so two runs in one process (or after other random work) started from
    # different LoRA A matrices and their curves parted from step 2.
    set_seed(cfg.train.seed)
    if is_vision_config(model.config):
        model = apply_vision_finetuning(model, cfg.finetune, adapter_path=adapter_path)
    else:
        model = apply_finetuning(model, cfg.finetune, adapter_path=adapter_path)
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if lora:
            model.enable_input_require_grads()
    if lora and world().is_main:
        save_initial_adapter(model, cfg.finetune, Path(cfg.train.output_dir))  # PiSSA / OLoRA only
    trainable, total = count_parameters(model)
    console.print(f"[bold]{cfg.finetune.finetuning_type}[/bold]: training {trainable:,} of {total:,} parameters "
                  f"({100 * trainable / total:.2f}%), {'bf16' if bf16 else 'fp32'} compute "
                  f"[dim]({resolve_bf16(cfg.train.bf16)[1]})[/dim]")
    return model


class TunesmithTrainer(Trainer):
    """transformers' Trainer with tunesmith's loss: label-position-only, chunked, bf16 autocast."""

    def __init__(self, *args: Any, fast_path: bool = True, bf16: bool = False,
                 token_logger: JsonlLogger | None = None, compiled: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_path = fast_path and supports_fast_loss(self.model)
        self.bf16_compute = bf16
        self.token_logger = token_logger
        self.compiled = compiled
        self._parameter_count: int | None = None

    def train(self, *args: Any, **kwargs: Any) -> Any:
        checkpoint = kwargs.get("resume_from_checkpoint")
        if checkpoint and not (self.is_deepspeed_enabled or self.is_fsdp_enabled) and \
                holds_last_step(checkpoint, self.args.max_steps, self.args.num_train_epochs):
            return self._finish_from(checkpoint)
        with contextlib.ExitStack() as stack:
            if self.bf16_compute and hasattr(self.model, "peft_config"):
                from peft.helpers import disable_input_dtype_casting

                # LoRA weights stay fp32 for the optimizer; under autocast their matmuls run in bf16
                # without first copying every activation to fp32. Set once for the run: the helper
                # walks every module, 8 ms per step when entered per step (measured).
                stack.enter_context(disable_input_dtype_casting(self.model))
            out = super().train(*args, **kwargs)
        if self.compiled:
            mark_compiled(self.model)
        return out

    def _finish_from(self, checkpoint: str) -> Any:
        """Take the weights and state of a checkpoint that already holds the run's last step, training nothing."""
        from transformers.trainer_callback import TrainerState
        from transformers.trainer_utils import TrainOutput

        self._load_from_checkpoint(checkpoint)
        self.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
        console.print(f"{Path(checkpoint).name} holds the run's last step ({self.state.global_step}): nothing "
                      "left to train, finishing from it")
        return TrainOutput(self.state.global_step, 0.0, {})

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """The Trainer's 6 x tokens x parameters estimate, with the parameter count computed once
        (the default re-counts every parameter each step: 11 ms per step here)."""
        if self._parameter_count is None:
            model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            self._parameter_count = model.num_parameters(exclude_embeddings=True) \
                if hasattr(model, "num_parameters") else 0
        ids = inputs.get("input_ids")
        return 6 * (ids.numel() if ids is not None else 0) * self._parameter_count

    def _precision(self, model: Any) -> contextlib.AbstractContextManager:
        if self.bf16_compute:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            return torch.autocast(device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if self.token_logger is not None and model.training:
            mask = inputs.get("attention_mask")
            self.token_logger.add_tokens(int(mask.sum()) if mask is not None else inputs["input_ids"].numel())
        with self._precision(model):
            if self.fast_path:
                num = int(num_items_in_batch) if num_items_in_batch is not None else None
                loss, _ = fast_causal_lm_loss(model, inputs, num_items=num)
                self.loss_is_scaled_for_ga = num is not None
            else:
                self.loss_is_scaled_for_ga = None
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return (loss, {"loss": loss}) if return_outputs else loss


def training_arguments(cfg: Config, *, has_eval: bool, n_train_rows: int,
                       sampling: str = "random") -> TrainingArguments:
    """Map tunesmith's keys (LLaMA-Factory names) onto TrainingArguments."""
    t = cfg.train
    every = eval_steps(cfg, n_train_rows, world().world_size)
    return TrainingArguments(
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
        eval_steps=every if has_eval else None,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=t.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,  # precision is applied by TunesmithTrainer (autocast); bf16=True fails on a CPU without use_cpu
        **engine_arguments(cfg, cuda=torch.cuda.is_available()),  # trackers, DDP / FSDP2 / DeepSpeed
        neftune_noise_alpha=t.neftune_noise_alpha,
        remove_unused_columns=False,
        prediction_loss_only=True,
        # Random batches on both paths, as LLaMA-Factory and the Trainer default. Length-grouped batches
        # (sorted within megabatches of ~50 batches) ran one sub-task after another when sub-tasks differ
        # in length, and the loss spiked to 10-14 nats when the other came back; packing already removes
        # the padding that grouping saved.
        train_sampling_strategy=sampling,
        dataloader_num_workers=0,
        disable_tqdm=os.environ.get("TUNESMITH_NO_PROGRESS") == "1",
        log_level="warning",
        save_only_model=False,
    )


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    """A datasets.Dataset of encoded rows, with a 'length' column (token count) for reports."""
    from datasets import Dataset

    return Dataset.from_list([{**r, "length": len(r["input_ids"])} for r in rows])


def _optimizer(cfg: Config, model: Any, args: TrainingArguments) -> tuple[Any, dict[str, Any]] | None:
    """The Trainer's own optimizer class with per-part parameter groups (vision_lr / merger_lr), or None."""
    groups = parameter_groups(model, cfg.finetune, cfg.train.learning_rate, cfg.train.weight_decay) \
        if is_vision_config(model.config) else None
    if groups is None:
        return None
    if cfg.finetune.loraplus_lr_ratio:
        raise ConfigError(["'loraplus_lr_ratio' and 'vision_lr' / 'merger_lr' each set the optimizer's groups; "
                           "use one of them"])
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    for g in groups:
        console.print(f"optimizer group {g['name']}: {sum(p.numel() for p in g['params']):,} parameters, "
                      f"lr {g['lr']:g}, weight decay {g['weight_decay']:g}")
    return cls, {**kwargs, "params": groups}  # the Trainer uses "params" as the groups


def build_trainer(cfg: Config, model: Any, tokenizer: Any, train_rows: list[dict], val_rows: list[dict],
                  *, sampling: str = "random", collator: Any = None) -> tuple[TunesmithTrainer, JsonlLogger]:
    """The Trainer for a stage; ``tokenizer`` may be the tokenizer or just its pad token id (so the
    tokenizer can be freed before training: a 262k vocabulary holds ~300 MB). ``sampling``: the
    Trainer's ``train_sampling_strategy`` ("sequential" lets the calibration choose the order).
    ``collator``: the batch builder (default: padding; vision models pass one that reads the images)."""
    pad_id = tokenizer if isinstance(tokenizer, int) else tokenizer.pad_token_id
    logger = JsonlLogger(cfg.train.output_dir, append=bool(cfg.train.resume_from_checkpoint))
    args = training_arguments(cfg, has_eval=bool(val_rows), n_train_rows=len(train_rows), sampling=sampling)
    fast, why_not = fast_loss_decision(cfg)
    if fast and is_vision_config(model.config):
        fast, why_not = False, ("vision-language model: the fast loss calls the language model alone, without "
                                "the images; the model's own forward merges them")
    if fast and not supports_fast_loss(model):
        fast, why_not = False, f"{type(model).__name__} has no decoder with a bias-free linear output layer"
    if why_not:
        console.print(f"[dim]fast_path: the fast loss and packing are off ({why_not}); the Trainer's loss is "
                      "used[/dim]")
    console.print(f"batch: {batch_report(cfg)}")
    compiled = _maybe_compile(cfg, model, train_rows, args, fast=fast)
    trainer = TunesmithTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(train_rows),
        eval_dataset=to_dataset(val_rows) if val_rows else None,
        data_collator=collator or PadCollator(pad_id),
        optimizer_cls_and_kwargs=_optimizer(cfg, model, args),
        callbacks=[logger, StopOnSignal()],  # SIGTERM: save a checkpoint, then stop
        optimizers=(loraplus_optimizer(cfg, model), None),  # LoRA+ (loraplus_lr_ratio), else the Trainer's
        fast_path=fast,
        bf16=use_bf16(cfg),
        token_logger=logger,
        compiled=compiled,
    )
    return trainer, logger


def planned_tokens(rows: list[dict[str, Any]], args: TrainingArguments) -> int:
    """Tokens the run will train on: epochs over the rows, or max_steps batches of average rows."""
    if not rows:
        return 0
    total = sum(len(r["input_ids"]) for r in rows)
    if args.max_steps and args.max_steps > 0:
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
        return int(args.max_steps * batch * total / len(rows))
    return int(total * args.num_train_epochs)


def _maybe_compile(cfg: Config, model: Any, rows: list[dict[str, Any]], args: TrainingArguments, *,
                   fast: bool) -> bool:
    if (cfg.distributed.deepspeed or cfg.distributed.fsdp) and not cfg.train.torch_compile:
        return False  # the engine wraps the layers itself; an explicit true is checked by check_engines
    if is_vision_config(model.config) and not cfg.train.torch_compile:
        return False  # rows differ in image count and size: every batch would recompile
    on, why = decide(cfg.train.torch_compile, model.config, trained_tokens=planned_tokens(rows, args),
                     fast_path=fast and supports_fast_loss(model),
                     gradient_checkpointing=cfg.train.gradient_checkpointing)
    if on and compile_decoder_layers(model):
        console.print(f"torch.compile: on ({why}); the first step includes compiling")
        return True
    if cfg.train.torch_compile is not False:  # an explicit false needs no explanation
        console.print(f"[dim]torch.compile: off ({why})[/dim]")
    return False


def save_tokenizer_with_template(tokenizer: Any, template: Template, out: Path) -> None:
    """Write the tokenizer with the Jinja chat template equivalent to the training template."""
    tokenizer.chat_template = to_jinja(template)
    tokenizer.save_pretrained(out)


def save_generation_config(model: Any, tokenizer: Any, template: Template, out: Path) -> None:
    """generation_config.json whose eos_token_id lists every end-of-turn id (with <eos> alone, a Gemma chat answer
    runs on to max_new_tokens)."""
    from transformers import GenerationConfig

    base = getattr(model, "generation_config", None) or GenerationConfig()
    gen = GenerationConfig.from_dict(base.to_dict())
    gen.eos_token_id = end_token_ids(tokenizer, template.stop_words)
    gen.pad_token_id = tokenizer.pad_token_id
    gen.save_pretrained(out)


def finish_run(cfg: Config, trainer: TunesmithTrainer, tokenizer: Any, template: Template, *,
               started: float, extra: dict[str, Any] | None = None, processor: Any = None) -> RunResult:
    """Save the model/adapter, tokenizer + template (+ a vision model's image processor config), loss plot,
    summary and, last, the run record."""
    out = Path(cfg.train.output_dir)
    release_workspace()  # the loss's logits buffers are not needed for evaluation
    trainer.save_model(str(out))  # every rank takes part (ZeRO-3 / FSDP gather the weights); rank 0 writes
    if not trainer.is_world_process_zero():
        return RunResult(out, {"steps": trainer.state.global_step, "rank": world().rank}, template, {})
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; the resolved YAML says the same
    convert_rewriting_adapter(trainer.model, out)  # PiSSA / OLoRA: re-saved as a LoRA for the original base
    model = trainer.model
    add_tokens_to_tokenizer(tokenizer, cfg.finetune.new_special_tokens)  # the run's vocabulary, as trained
    save_tokenizer_with_template(tokenizer, template, out)
    if processor is not None:
        save_processor(processor, out)
    save_generation_config(model.get_base_model() if hasattr(model, "get_base_model") else model,
                           tokenizer, template, out)
    rows = read_log(out)
    files = {"output_dir": str(out), "log": str(out / "train_log.jsonl"), "config": str(out / RUN_CONFIG)}
    if cfg.train.plot_loss:
        png = plot_loss(rows, out / "loss.png", title=f"{cfg.finetune.stage} / {cfg.finetune.finetuning_type}")
        if png:
            files["loss_plot"] = str(png)
    final = [r for r in rows if "train_runtime" in r]
    losses = [r["loss"] for r in rows if "loss" in r]
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    tps = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    metrics = {
        "stage": cfg.finetune.stage,
        "finetuning_type": cfg.finetune.finetuning_type,
        "template": template.name,
        "steps": trainer.state.global_step,
        "wall_time_s": round(time.time() - started, 1),
        "train_runtime_s": final[-1]["train_runtime"] if final else None,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "final_eval_loss": evals[-1] if evals else None,
        "tokens_per_s": tps[-1] if tps else None,
        "peak_rss_mb": round(peak_rss_mb()),
        "processes": world().world_size,
        "global_batch_size": global_batch_size(cfg),
        **(extra or {}),
    }
    write_json(out / SUMMARY, {"metrics": metrics, "files": files})
    # Last, atomically: a folder with tunesmith_run.yaml holds every final file; one stopped while saving
    # has none, and loading it is refused (train/resolve.py) instead of guessing its base model.
    write_text(out / RUN_CONFIG, dump_config(cfg))
    return RunResult(out, metrics, template, files)


def read_summary(output_dir: str | Path) -> dict[str, Any]:
    path = Path(output_dir) / SUMMARY
    return json.loads(path.read_text()) if path.exists() else {}
