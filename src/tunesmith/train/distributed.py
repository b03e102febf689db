"""Where this process stands in a multi-process run, and what that changes for the training runner.

tunesmith has no distributed code of its own: torchrun (or ``accelerate launch``) starts the processes
and sets ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE``; transformers' Trainer, through accelerate, wraps
the model in DDP, FSDP2 or DeepSpeed from the arguments built here. This module reads the launcher's
environment, maps the ``distributed`` config keys onto ``TrainingArguments``, and decides what of the
CPU fast path can run (and says why not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.train.engines import deepspeed_config, fsdp_arguments, zero_stage
from tunesmith.train.trackers import prepare_tracker_env, resolve_trackers, tracker_arguments
from tunesmith.utils.console import console


@dataclass(frozen=True)
class World:
    """This process's place: global rank, rank on its node, process counts (1 process: 0, 0, 1, 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world() -> World:
    """The launcher's view of this process, from the variables torchrun and accelerate set."""
    env = os.environ
    size = int(env.get("WORLD_SIZE", "1"))
    return World(rank=int(env.get("RANK", "0")), local_rank=int(env.get("LOCAL_RANK", "0")), world_size=size,
                 local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(size))))


def is_main_process() -> bool:
    """True in the process that prints and writes the run folder (rank 0, or the only process)."""
    return world().is_main


def engine_arguments(cfg: Config, *, cuda: bool) -> dict[str, Any]:
    """TrainingArguments keys for the distributed engine, the trackers and the process-group timeout."""
    d = cfg.distributed
    out: dict[str, Any] = {"ddp_timeout": d.ddp_timeout, **tracker_arguments(cfg)}
    for note in prepare_tracker_env(cfg, resolve_trackers(cfg)):
        console.print(f"[dim]{note}[/dim]")
    if world().distributed and not cuda:
        out["ddp_backend"] = "gloo"  # (only when launched: a backend makes accelerate set up a process group)
    if d.deepspeed:
        # The engine itself runs fp32 (its "auto" precision follows bf16=False); bf16 compute comes from the
        # same autocast as in one process (TunesmithTrainer), which DeepSpeed accepts around its forward.
        out["deepspeed"] = deepspeed_config(d.deepspeed)
    if d.fsdp:
        out.update(fsdp_arguments(d.fsdp))
    if world().distributed and cfg.train.gradient_checkpointing:
        out["ddp_find_unused_parameters"] = False  # re-entrant-free checkpointing uses every parameter
    return out


def fast_loss_decision(cfg: Config) -> tuple[bool, str | None]:
    """(use tunesmith's fast loss, why not); packing is part of the fast loss."""
    if not cfg.train.fast_path:
        return False, None
    d = cfg.distributed
    if d.deepspeed:
        stage = zero_stage(deepspeed_config(d.deepspeed))
        return False, (f"DeepSpeed ZeRO-{stage} runs the model inside its engine"
                       + (" and partitions the output layer's weight" if stage == 3 else "")
                       + "; the fast loss would call the decoder outside it")
    if d.fsdp:
        return False, "FSDP2 shards the output layer's weight, which the fast loss reads whole"
    if world().distributed:
        return False, ("under DDP the loss must go through DistributedDataParallel's forward, which arranges the "
                       "gradient all-reduce; the fast loss calls the decoder directly")
    return True, None


def batch_report(cfg: Config) -> str:
    """'per device 4 x accumulation 2 x 2 processes = 16 examples per optimizer step'."""
    t, w = cfg.train, world()
    parts = [f"per device {t.per_device_train_batch_size}", f"accumulation {t.gradient_accumulation_steps}"]
    if w.world_size > 1:
        parts.append(f"{w.world_size} processes")
    total = t.per_device_train_batch_size * t.gradient_accumulation_steps * w.world_size
    return f"{' x '.join(parts)} = global batch {total} examples per optimizer step"


def global_batch_size(cfg: Config) -> int:
    t = cfg.train
    return t.per_device_train_batch_size * t.gradient_accumulation_steps * world().world_size


def preflight(cfg: Config, *, cuda: bool) -> None:
    """Raise one ConfigError naming every problem with the engine and tracker keys (before any launch)."""
    from tunesmith.config.load import stage_configs
    from tunesmith.train.engines import check_engines
    from tunesmith.train.trackers import check_trackers
    from tunesmith.utils.errors import ConfigError

    problems: list[str] = []
    for stage_cfg in stage_configs(cfg):
        problems += [p for p in check_engines(stage_cfg, cuda=cuda) + check_trackers(stage_cfg) if p not in problems]
    if problems:
        raise ConfigError(problems, source=cfg.source)


def end_process_group() -> None:
    """Close the launcher's process group at the end of a launched run (torch warns when it is left open)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def quiet_other_ranks() -> None:
    """On ranks other than 0, drop the libraries' warnings, info lines and progress bars (rank 0 shows them
    once); errors still print on every rank."""
    if world().is_main:
        return
    import logging
    import warnings

    warnings.simplefilter("ignore")
    for name in ("transformers", "datasets", "peft", "trl", "accelerate", "DeepSpeed", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
