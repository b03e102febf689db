"""The stage registry: ``stage: NAME`` in a config picks the workflow that trains it."""

from __future__ import annotations

from collections.abc import Callable

from tunesmith.config.schema import Config
from tunesmith.train.dpo import run_dpo
from tunesmith.train.faults import check_writable, save_faults
from tunesmith.train.grpo import run_grpo
from tunesmith.train.kto import run_kto
from tunesmith.train.pt import run_pt
from tunesmith.train.rm import run_rm
from tunesmith.train.runner import RunResult
from tunesmith.train.sft import run_sft
from tunesmith.utils.errors import ConfigError

STAGES: dict[str, Callable[[Config], RunResult]] = {
    "sft": run_sft,
    "pt": run_pt,
    "rm": run_rm,
    "dpo": run_dpo,
    "orpo": run_dpo,  # run_dpo picks the ORPO loss
    "simpo": run_dpo,  # run_dpo picks the SimPO loss
    "kto": run_kto,
    "grpo": run_grpo,
}


def run_stage(cfg: Config) -> RunResult:
    """Train one stage as configured."""
    runner = STAGES.get(cfg.finetune.stage)
    if runner is None:
        raise ConfigError([f"'stage': {cfg.finetune.stage!r} is not available yet (available: "
                           f"{', '.join(STAGES)})"])
    check_writable(cfg.train.output_dir)  # before data, model or any training
    with save_faults(cfg.train.output_dir):  # a full disk: the previous checkpoint is kept, and named
        return runner(cfg)
