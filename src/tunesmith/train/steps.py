"""How many optimizer steps a run takes, counted the way transformers' Trainer counts them.

One definition for the Trainer arguments (the default ``eval_steps``), the TRL stages, the advisor's
estimates and a continued run's schedule, so none of them can disagree with the run itself.
The Trainer's dataloader yields ``ceil(rows / batch)`` batches per process (the last one short, each
process reading ``ceil(rows / processes)`` rows); an optimizer step takes ``gradient_accumulation_steps``
of them, the last step of an epoch fewer; epochs may be fractional and round up.
"""

from __future__ import annotations

import math

from tunesmith.config.schema import Config


def steps_per_epoch(rows: int, batch_size: int, grad_accum: int, processes: int = 1) -> int:
    """Optimizer steps per epoch."""
    batches = math.ceil(math.ceil(rows / max(1, processes)) / batch_size)
    return max(1, math.ceil(batches / grad_accum))


def total_steps(rows: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int = -1,
                processes: int = 1) -> int:
    """Optimizer steps of the whole run (``max_steps`` wins when above 0)."""
    if max_steps > 0:
        return max_steps
    return math.ceil(epochs * steps_per_epoch(rows, batch_size, grad_accum, processes))


def default_eval_steps(total: int) -> int:
    """``eval_steps`` when unset: about 10 evaluations per run."""
    return max(1, total // 10)


def config_steps(cfg: Config, rows: int, processes: int = 1) -> int:
    """``total_steps`` for a config training on ``rows`` rows."""
    t = cfg.train
    return total_steps(rows, t.per_device_train_batch_size, t.gradient_accumulation_steps, t.num_train_epochs,
                       t.max_steps, processes)


def eval_steps(cfg: Config, rows: int, processes: int = 1) -> int:
    """The ``eval_steps`` a run uses: the configured one, else ``default_eval_steps``."""
    return cfg.train.eval_steps or default_eval_steps(config_steps(cfg, rows, processes))
